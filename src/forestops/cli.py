"""The ``forestops`` command: one subcommand per service or operation.

Each command only parses options and hands over to the package, importing
lazily so that ``forestops --help`` stays fast and a service does not pay
for the libraries of the others.

This is the one edge where errors become exit codes: a
:class:`~forestops.errors.ForestopsError` raised anywhere below a command is
printed (in red, on stderr, without a traceback) and the process exits with
the error's ``exit_code``; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from forestops.errors import ForestopsError
from forestops.settings import Settings, load_settings


def report_error(error: ForestopsError) -> int:
    """Print ``error`` for a person and return the exit code it stands for."""
    from forestops.redaction import redact

    typer.secho(f"error: {redact(error)}", fg=typer.colors.RED, err=True)
    return int(error.exit_code)


class _Forestops(typer.Typer):
    """Typer whose entry point turns a ForestopsError into its message and exit code."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except ForestopsError as error:
            sys.exit(report_error(error))


app = _Forestops(no_args_is_help=True, add_completion=False, help="Forest Cover Type MLOps stack.")


# Commands that never touch FORESTOPS_HOME (the compose deployment's helper).
_NO_HOME = {"gen-env", "mlflow-db-upgrade", "mlflow-users"}


# Commands that act on the local stack's data: they adopt its recorded settings (forestops.local.recorded).
_ADOPT_STACK_SETTINGS = {"train", "ingest-once", "promote", "rollback", "pin", "unpin", "history"}


@app.callback()
def main(ctx: typer.Context) -> None:
    """Forest Cover Type MLOps stack: one subcommand per service or operation."""
    if ctx.invoked_subcommand not in _NO_HOME:
        import os

        from forestops.home import ensure_home
        from forestops.settings import Settings

        # Read before any setting is validated: a missing folder is made, an unusable one refused by name.
        home = ensure_home(Path(os.environ.get("FORESTOPS_HOME") or Settings.model_fields["home"].default))
        if ctx.invoked_subcommand in _ADOPT_STACK_SETTINGS:
            from forestops.local.recorded import adopt_running_stack

            adopted = adopt_running_stack(home)
            if adopted:
                shown = ", ".join(f"{name.removeprefix('FORESTOPS_')}={value}" for name, value in adopted.items())
                typer.secho(
                    f"using the running local stack's settings (your environment does not set these): {shown}",
                    fg=typer.colors.CYAN,
                    err=True,
                )


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment with the options given on the command line."""
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


def _require_port(host: str, port: int, setting: str, title: str) -> None:
    """Refuse a taken port before a server spends time starting (see forestops.ports)."""
    from forestops.ports import require_free_port

    require_free_port(host, port, setting, title)


@app.command()
def datasource(
    host: str = typer.Option(None, help="Interface to bind (default FORESTOPS_DATASOURCE_HOST)."),
    port: int = typer.Option(None, help="Port (default FORESTOPS_DATASOURCE_PORT, 8090)."),
) -> None:
    """Serve the batch data API (the course's API, reproduced)."""
    settings = _settings(datasource_host=host, datasource_port=port)
    _require_port(settings.datasource_host, settings.datasource_port, "DATASOURCE_PORT", "batch data API")
    from forestops.datasource.server import serve

    sys.exit(serve(settings))


@app.command("gen-env")
def gen_env(
    example: Path = typer.Option(Path(".env.example"), help="Template with generate:<kind> placeholders."),
    target: Path = typer.Option(Path(".env"), help="File to create; never overwritten."),
) -> None:
    """Create the compose deployment's .env with fresh random secrets (keeps an existing one)."""
    from forestops.deploy.envfile import main as envfile_main

    raise typer.Exit(envfile_main([str(example), str(target)]))


@app.command()
def check() -> None:
    """Verify a running deployment end to end: one line per check, with the fix when one fails (exit 1)."""
    settings = _settings()
    from forestops.ops.check import ChecksFailed, run_checks, summary, target_from_settings

    results = run_checks(target_from_settings(settings))
    for result in results:
        typer.echo(result.line())
    try:
        typer.echo(summary(results))
    except ChecksFailed as error:
        typer.secho(str(error), fg=typer.colors.RED, err=True)
        raise typer.Exit(int(error.exit_code)) from None


@app.command("ingest-once")
def ingest_once(
    run_id: str = typer.Option(None, help="Idempotency key: a second call with the same id fetches nothing."),
) -> None:
    """Fetch one portion from the data API and store it (what each ingest DAG run does)."""
    import json

    from forestops.logs import setup_logging

    setup_logging()
    settings = _settings()
    from forestops.ingest.pipeline import ingest_once as run_ingest_once
    from forestops.names import FetchStatus

    outcome = run_ingest_once(settings, run_id=run_id)
    typer.echo(json.dumps(outcome.as_dict()))
    raise typer.Exit(1 if outcome.status == FetchStatus.ERROR else 0)


@app.command("airflow-history")
def airflow_history(
    once: bool = typer.Option(False, "--once", help="Clean once and exit instead of every retention period."),
    check: bool = typer.Option(False, "--check", help="Health check: exit 1 unless the last clean succeeded lately."),
) -> None:
    """Keep Airflow's run history bounded: `airflow db clean` of rows older than FORESTOPS_AIRFLOW_HISTORY_HOURS."""
    from forestops.logs import setup_logging

    setup_logging()
    settings = _settings()
    from forestops.airflow_history import check_recent, clean_history, run_forever

    if check:
        problem = check_recent(settings)
        if problem:
            typer.secho(problem, fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        return
    if once:
        result = clean_history(settings.airflow_history_hours)
        typer.echo(f"Airflow run history before {result.cutoff.isoformat(timespec='seconds')} deleted")
        return
    run_forever(settings)


@app.command("mlflow-db-upgrade")
def mlflow_db_upgrade() -> None:
    """Migrate MLflow's database to this MLflow's schema (the compose's one-shot job before the server).

    The URL comes from MLFLOW_BACKEND_STORE_URI, never the command line (it holds a password).
    Safe to repeat; a half-migrated schema is reported with the recovery step.
    """
    from forestops.deploy import mlflow_schema

    typer.echo(mlflow_schema.upgrade(mlflow_schema.backend_uri()))


@app.command("mlflow-users")
def mlflow_users() -> None:
    """Create MLflow's client users and their grants (the compose's one-shot job once MLflow is up).

    Runs as MLflow's admin (MLFLOW_TRACKING_USERNAME / _PASSWORD); client passwords come from
    MLFLOW_TRAINER_PASSWORD, MLFLOW_INFERENCE_PASSWORD and MLFLOW_UI_PASSWORD. Safe to repeat.
    """
    settings = _settings()
    from forestops.deploy import mlflow_users as users

    for line in users.bootstrap(settings.mlflow_tracking_uri, settings.experiment_name, settings.model_name):
        typer.echo(line)


@app.command("db-init")
def db_init(
    admin_url: str = typer.Option(None, help="Administrator URL (default FORESTOPS_DB_ADMIN_URL); MySQL only."),
    user_host: str = typer.Option("%", help="Host part of the application user's account."),
) -> None:
    """Create the covertype database and its application user (MySQL), then migrate the schema as that user."""
    settings = _settings()
    from forestops.storage.provision import initialise

    admin = admin_url or (settings.db_admin_url.get_secret_value() if settings.db_admin_url else None)
    result = initialise(settings.raw_database_url, admin, user_host)
    if isinstance(result, str):
        typer.echo(f"schema at revision {result} ({settings.raw_database_url})")
    else:
        typer.echo(
            f"database {result.database}: user {result.user}@{result.host} granted {', '.join(result.grants)}; "
            f"schema at revision {result.revision}"
        )


@app.command()
def inference(
    host: str = typer.Option(None, help="Interface to bind (default FORESTOPS_INFERENCE_HOST)."),
    port: int = typer.Option(None, help="Port (default FORESTOPS_INFERENCE_PORT, 8000)."),
    workers: int = typer.Option(None, help="Worker processes (default FORESTOPS_INFERENCE_WORKERS, 1)."),
) -> None:
    """Serve the inference API: the champion model from MLflow, swapped when the alias moves."""
    settings = _settings(inference_host=host, inference_port=port, inference_workers=workers)
    _require_port(settings.inference_host, settings.inference_port, "INFERENCE_PORT", "inference API")
    from forestops.serving.server import serve

    sys.exit(serve(settings))


@app.command()
def ui(
    host: str = typer.Option(None, help="Interface to bind (default FORESTOPS_UI_HOST)."),
    port: int = typer.Option(None, help="Port (default FORESTOPS_UI_PORT, 8501)."),
) -> None:
    """Serve the Streamlit app: predict, watch and drive the pipeline, compare models."""
    settings = _settings(ui_host=host, ui_port=port)
    _require_port(settings.ui_host, settings.ui_port, "UI_PORT", "Streamlit UI")
    from forestops.ui.server import serve

    sys.exit(serve(settings))


@app.command("mlflow-server")
def mlflow_server_command(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(None, help="Port (default FORESTOPS_MLFLOW_PORT, 5000)."),
    workers: int = typer.Option(1, help="Server worker processes."),
) -> None:
    """Run `mlflow server`: SQLite + local artefacts, or MySQL + S3 when FORESTOPS_MYSQL_URL / S3 are set."""
    from forestops.logs import setup_logging

    setup_logging()
    settings = _settings(mlflow_port=port)
    _require_port(host, settings.mlflow_port, "MLFLOW_PORT", "MLflow server")
    from forestops.local.mlflow_server import serve

    serve(settings, host=host, port=settings.mlflow_port, workers=workers)


@app.command()
def train(
    force: bool = typer.Option(False, "--force", help="Train even when too few new rows arrived."),
    search_seconds: float = typer.Option(None, help="Search budget (default FORESTOPS_SEARCH_SECONDS)."),
) -> None:
    """Train the candidates on the stored rows, register the best, run champion/challenger."""
    settings = _settings(search_seconds=search_seconds)
    from forestops.training.commands import run_train

    raise typer.Exit(run_train(settings, force))


@app.command()
def promote(version: str = typer.Argument(..., help="The model version to make champion.")) -> None:
    """Make VERSION the champion by hand (the old champion is recorded for rollback)."""
    from forestops.training.commands import run_promote

    raise typer.Exit(run_promote(_settings(), version))


@app.command()
def monitor(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of the table.")) -> None:
    """Accuracy, macro-F1 and drift of each batch, with the champion version that scored it (covertype_monitor)."""
    from forestops.monitoring import report

    rows = report.load(_settings())
    typer.echo(report.as_json(rows) if as_json else report.table(rows))


@app.command()
def rollback() -> None:
    """Give the champion alias back to the champion before the current one (from the promotion history)."""
    from forestops.training.commands import run_rollback

    raise typer.Exit(run_rollback(_settings()))


@app.command()
def pin(
    version: str = typer.Argument(None, help="Make this version champion first (default: keep the current one)."),
    reason: str = typer.Option("", help="Why, shown wherever the pin is shown."),
) -> None:
    """Pause automatic promotion: trainings still register versions, but the champion stays until `unpin`."""
    from forestops.training.pin_commands import run_pin

    raise typer.Exit(run_pin(_settings(), version, reason))


@app.command()
def unpin() -> None:
    """Resume automatic promotion (the next training that beats the champion replaces it)."""
    from forestops.training.pin_commands import run_unpin

    raise typer.Exit(run_unpin(_settings()))


@app.command()
def history(
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
    limit: int = typer.Option(50, min=1, help="Newest rows to show."),
) -> None:
    """Show the promotion history: every alias move, who made it, from which version to which, and why."""
    from forestops.training.commands import run_history

    raise typer.Exit(run_history(_settings(), as_json, limit))


stack_app = typer.Typer(no_args_is_help=True, help="The local stack: every service as a background process.")
app.add_typer(stack_app, name="stack")


@stack_app.command("up")
def stack_up(
    demo: bool = typer.Option(False, help="Short demo windows for settings the environment does not set."),
) -> None:
    """Start the whole stack in the background, wait until it is healthy, print the URLs."""
    from forestops.local.commands import run_up

    raise typer.Exit(run_up(demo))


@stack_app.command("down")
def stack_down() -> None:
    """Stop exactly the processes `stack up` started (by recorded pid and process group)."""
    from forestops.local.commands import run_down

    raise typer.Exit(run_down())


@stack_app.command("reset")
def stack_reset(
    yes: bool = typer.Option(False, "--yes", help="Do not ask (for scripts)."),
) -> None:
    """Remove the local stack's state (rows, registry, Airflow runs, data API progress) for a fresh start."""
    from forestops.local.commands import run_reset

    raise typer.Exit(run_reset(yes))


@stack_app.command("status")
def stack_status() -> None:
    """Show each service of the local stack: pid, state, URL, log."""
    from forestops.local.commands import run_status

    raise typer.Exit(run_status())


if __name__ == "__main__":
    app()
