"""Options shared by several commands."""

from __future__ import annotations

import click

#: ``--registry DIR``: which registry checkout a command reads.
registry_option = click.option(
    "--registry",
    "registry_dir",
    type=click.Path(file_okay=False, path_type=str),
    help="Registry checkout (default: NLMR_REGISTRY or ./registry).",
)
