"""The ``trackflow`` command.

``server`` serves the tracking API, ``demo`` logs a small sweep, ``db``
manages the schema, and ``runs``, ``experiments`` and ``gc`` do what users of
``mlflow runs`` / ``mlflow experiments`` / ``mlflow gc`` reach for. Every
command that talks to a store takes ``--tracking-uri`` (default: the
``TRACKFLOW_TRACKING_URI`` environment, else ``sqlite:///trackflow.db``).
"""

from __future__ import annotations

import sys

import click

from tracking.errors import TrackingError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trackflow")
def cli() -> None:
    """trackflow: experiment tracking with MLflow's API, built for pipelines."""


def _register() -> None:
    import importlib

    for name in ("db", "demo", "runs", "server"):
        for command in importlib.import_module(f"tracking.cli.{name}").COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    """Entry point of the ``trackflow`` console script."""
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except TrackingError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
