"""The ``forestops`` command: one subcommand per service or operation.

Each command only parses options and hands over to the package, importing
lazily so that ``forestops --help`` stays fast and a service does not pay
for the libraries of the others.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from forestops.settings import SettingsError, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Forest Cover Type MLOps stack.")


@app.callback()
def main() -> None:
    """Forest Cover Type MLOps stack: one subcommand per service or operation."""


def _settings(**overrides):
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as error:
        typer.secho(str(error), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


@app.command()
def datasource(
    host: str = typer.Option(None, help="Interface to bind (default FORESTOPS_DATASOURCE_HOST)."),
    port: int = typer.Option(None, help="Port (default FORESTOPS_DATASOURCE_PORT, 8090)."),
) -> None:
    """Serve the batch data API (the course's API, reproduced)."""
    settings = _settings(datasource_host=host, datasource_port=port)
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
def ui(
    host: str = typer.Option(None, help="Interface to bind (default FORESTOPS_UI_HOST)."),
    port: int = typer.Option(None, help="Port (default FORESTOPS_UI_PORT, 8501)."),
) -> None:
    """Serve the Streamlit app: predict, watch and drive the pipeline, compare models."""
    settings = _settings(ui_host=host, ui_port=port)
    from forestops.ui.server import serve

    sys.exit(serve(settings))


if __name__ == "__main__":
    app()
