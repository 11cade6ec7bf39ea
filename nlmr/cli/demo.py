"""``nlmr demo``: the main job, end to end, on the embedded default."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--registry",
    "registry_dir",
    type=click.Path(file_okay=False, path_type=str),
    help="Registry to use (default: the checkout's registry/, else the sample shipped with nlmr).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=str),
    default="nlmr-demo",
    show_default=True,
    help="Where the demo writes (replaced on each run).",
)
def demo(registry_dir: str | None, workdir: str) -> int:
    """Run nlmr's main job on the embedded default registry and show each step.

    Today: validate every card, list the catalogue, check that each card
    survives the round trip through a Hugging Face README.md, then build a
    tiny real model, `nlmr add` it to a copy of the registry with a local
    store, check the store deeply, `nlmr sync` it to a read-only mirror and
    load it from there offline, by path and by hub id.
    """
    from nlmr.demo import run_demo

    result = run_demo(registry_dir, workdir=workdir, echo=click.echo)
    return 0 if result.ok else 1
