"""Console output of ``forestops stack``: the user-facing side of stack.py."""

from __future__ import annotations

import logging
import os
import shutil
import time

import typer

from forestops.local import demo, previous, recorded, services, stack, supervise
from forestops.logs import setup_logging
from forestops.settings import load_settings


def run_up(use_demo: bool) -> int:
    setup_logging(short=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if use_demo:
        applied = demo.demo_environment()
        os.environ.update(applied)
    settings = load_settings()
    state = supervise.StackState.load(stack.Paths.of(settings).state)
    if state.alive():
        return _report_running(state, settings)
    typer.echo(f"starting the local stack under {settings.home.resolve()} (logs in {settings.home.resolve()}/logs)")
    for line in previous.describe(previous.inspect(settings), settings):
        typer.secho(line, fg=typer.colors.YELLOW)
    try:
        result = stack.up(settings)
    except KeyboardInterrupt:
        typer.secho("interrupted: stopped what was started", fg=typer.colors.YELLOW, err=True)
        return 130
    typer.secho(f"\nforestops local stack is up in {result.seconds:.0f}s ({result.mode})", fg=typer.colors.GREEN)
    for title, url in result.urls.items():
        typer.echo(f"  {title:<26} {url}")
    typer.echo(f"  Airflow login              {password_line(*result.login)}")
    typer.echo(f"  UI sign-in                 {password_line(*result.ui_login)}")
    typer.echo(f"  logs                       {result.logs}")
    typer.echo(f"  collection                 {collection_line(settings)}")
    if not shutil.which("prometheus"):
        typer.echo(
            "  Prometheus                 not installed, not started (apt-get install -y prometheus); "
            "the UI's Monitoring page works without it"
        )
    typer.echo("stop it with `make down` (forestops stack down); `make status` shows each service")
    return 0


def password_line(username: str, where: str) -> str:
    """A login: the user and where its password is, never the password itself."""
    return f"{username} / password in {where}" + (" (the setting)" if where.startswith("FORESTOPS_") else "")


def collection_line(settings) -> str:
    """The banner's collection figures: what is asked, and what a 2-core machine really manages."""
    likely = demo.likely_fetches_per_batch(settings.batch_seconds, settings.ingest_every)
    coverage = demo.expected_coverage(likely, settings.portion_fraction)
    return (
        f"{settings.batch_count} batches x {settings.batch_seconds:g}s; a fetch asked every "
        f"{settings.ingest_every:g}s, about {likely:.0f} per batch land (an ingest run takes "
        f"~{demo.INGEST_RUN_SECONDS:g}s), storing ~{coverage:.0%} of each batch; "
        f"search budget {settings.search_seconds:g}s"
    )


def _report_running(state: supervise.StackState, settings) -> int:
    """``up`` on a running stack: its URLs (exit 0), or what to do when only part of it runs (exit 1)."""
    alive = state.alive()
    exited = [name for name in state.services if name not in alive]
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.started_at))
    if exited:
        typer.secho(
            f"error: the local stack started {since} is only partly running (exited: {', '.join(exited)}); "
            "`make down` then `make demo` restarts it",
            fg=typer.colors.RED,
            err=True,
        )
        return 1
    typer.secho(f"the local stack is already running (started {since}, {state.mode}): nothing to start", bold=True)
    for name, record in state.services.items():
        if record.url:
            typer.echo(f"  {name:<26} {record.url}")
    airflow_where = (
        "FORESTOPS_AIRFLOW_PASSWORD"
        if settings.airflow_password is not None
        else str(settings.home.resolve() / "airflow" / "admin-password")
    )
    typer.echo(f"  {'Airflow login':<26} {password_line('admin', airflow_where)}")
    where = "FORESTOPS_UI_PASSWORD" if settings.ui_password is not None else str(services.ui_password_path(settings))
    typer.echo(f"  {'UI sign-in':<26} {password_line(settings.ui_username, where)}")
    typer.echo("`make status` shows each service; `make down` stops it")
    return 0


def run_reset(yes: bool) -> int:
    """``stack reset``: list what goes, ask, remove (refused while the stack runs)."""
    settings = load_settings()
    doomed = previous.targets(settings)
    if not doomed:
        typer.echo(f"nothing to reset under {settings.home.resolve()}")
        return 0
    typer.echo(f"this removes the local stack's state under {settings.home.resolve()}:")
    for path in doomed:
        typer.echo(f"  {path.relative_to(settings.home.resolve())}")
    typer.echo("(the downloaded data cache stays; a MySQL server's databases are not touched)")
    if not yes and not typer.confirm("remove them?", default=False):
        typer.echo("nothing removed")
        return 1
    removed = previous.reset(settings)
    typer.echo(f"removed {len(removed)} entries; `make demo` now starts from nothing")
    return 0


def run_down() -> int:
    began = time.monotonic()
    stopped, forced = stack.down(load_settings())
    if not stopped:
        typer.echo("the local stack was not running")
    else:
        typer.echo(f"stopped in {time.monotonic() - began:.0f}s: {', '.join(stopped)}")
    if forced:
        typer.secho(f"needed SIGKILL: {', '.join(forced)}", fg=typer.colors.YELLOW)
    return 0


def promotion_line(settings) -> str:
    """Whether the champion is pinned (automatic promotion paused) or moves with each better training.

    Read from the registry's pin tag over MLflow's REST API with a short timeout (MLflow's own client
    retries a dead server for minutes), with the running stack's MLflow and model name.
    """
    from forestops.ui.clients.http import ServiceError
    from forestops.ui.clients.mlflow_registry import MlflowRegistryClient

    found = MlflowRegistryClient(settings.mlflow_tracking_uri, settings.model_name, timeout=5.0).promotion_pin()
    if isinstance(found, ServiceError):
        return f"promotion: unknown ({found.problem})"
    if found is None:
        return (
            f"promotion: automatic (a training that beats the champion of {settings.model_name} replaces it; "
            "`forestops pin` holds the champion)"
        )
    version = f" to version {found.version}" if found.version else ""
    since = f" since {found.at}" if found.at else ""
    why = f", reason: {found.reason}" if found.reason else ""
    return (
        f"promotion: pinned{version} by {found.by}{since}{why} (automatic promotion paused; `forestops unpin` lifts it)"
    )


def _running_stack_settings(settings):
    """``settings`` with the running stack's MLflow and model name where the environment does not set them."""
    kept = recorded.running_stack_environment(settings.home.resolve())
    overrides = {
        field: kept[name]
        for field in ("mlflow_tracking_uri", "model_name")
        if (name := f"FORESTOPS_{field.upper()}") in kept and name not in os.environ
    }
    return load_settings(**overrides) if overrides else settings


def run_status() -> int:
    settings = load_settings()
    state, rows = stack.status(settings)
    if not rows:
        typer.echo("the local stack is not running (start it with `make demo`)")
        return 0
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.started_at))
    typer.echo(f"local stack started {since}, mode: {state.mode}")
    colours = {"healthy": typer.colors.GREEN, "running": typer.colors.YELLOW, "exited": typer.colors.RED}
    for row in rows:
        line = f"  {row.name:<22} {row.state:<8} pid {row.pid:<8} {row.url or '':<26} {row.log}"
        typer.secho(line, fg=colours[row.state])
    typer.echo(promotion_line(_running_stack_settings(settings)))
    exited = [row.name for row in rows if row.state == "exited"]
    if exited:
        typer.secho(f"exited: {', '.join(exited)} (see their logs); `make down` then `make demo` restarts", err=True)
    return 3 if exited else 0
