"""Options saying where ``pull``, ``info`` and ``ls`` look: mirrors, catalogue, store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

F = Callable[..., Any]


def source_options(f: F) -> F:
    """``--mirror``, ``--catalogue``, ``--remote``, ``--endpoint-url``, ``--registry``."""
    options = [
        click.option(
            "--mirror",
            "mirrors",
            multiple=True,
            type=click.Path(file_okay=False, path_type=str),
            help="A mirror root to look in first (repeatable; default: NLMR_MIRRORS, "
            "NLMR_MIRROR_ROOT or the config file).",
        ),
        click.option(
            "--catalogue",
            help="Catalogue to resolve from: path, https:// or s3:// URL "
            "(default: NLMR_CATALOGUE, else the store's nlmr/catalogue.json).",
        ),
        click.option(
            "--remote",
            help="The store: s3://bucket/prefix, https://host/bucket/prefix (public, no "
            "credentials) or a path (default: NLMR_REMOTE or the config file).",
        ),
        click.option("--endpoint-url", help="S3 endpoint for an s3:// store."),
        click.option(
            "--registry",
            "registry_dir",
            type=click.Path(file_okay=False, path_type=str),
            help="Resolve from a registry checkout (its DVC remote is the store) instead "
            "of a catalogue.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def make_resolver(
    mirrors: tuple[str, ...],
    catalogue: str | None,
    remote: str | None,
    endpoint_url: str | None,
    registry_dir: str | None,
    jobs: int | None = None,
) -> Any:
    """The :class:`nlmr.resolver.Resolver` for these options."""
    from nlmr import config
    from nlmr.resolver import Resolver

    settings = config.settings(
        mirrors=list(mirrors) or None,
        catalogue=catalogue,
        remote=remote,
        endpoint_url=endpoint_url,
        jobs=jobs,
    )
    return Resolver(settings, registry=registry_dir)
