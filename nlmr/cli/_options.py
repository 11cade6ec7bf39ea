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

#: ``--type``: which entry an id means when a model and a dataset share it.
kind_option = click.option(
    "--type",
    "kind",
    type=click.Choice(["model", "dataset"]),
    help="When an id names both a model and a dataset.",
)
