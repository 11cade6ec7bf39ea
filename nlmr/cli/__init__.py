"""The ``nlmr`` command line: a thin layer over the library.

Each command parses its options, calls one library function and renders what
it returns (``--json`` for machines). Library modules are imported inside the
commands, so ``nlmr --help`` loads nothing heavy. Errors reach the user in one
place, :func:`nlmr.cli._errors.run`.
"""

from __future__ import annotations

import click

from nlmr import __version__
from nlmr.cli import add as _add
from nlmr.cli import card as _card
from nlmr.cli import check_remote as _check_remote
from nlmr.cli import demo as _demo
from nlmr.cli import ls as _ls
from nlmr.cli import pull as _pull
from nlmr.cli import sync as _sync
from nlmr.cli import validate as _validate
from nlmr.cli._errors import run


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="nlmr")
def cli() -> None:
    """nlmr: the Nordic Language Model Repository.

    A registry of model and dataset cards, mirrored read-only onto HPC
    clusters in Hugging Face-compatible layouts. Set NLMR_DEBUG=1 to see
    tracebacks.
    """


cli.add_command(_validate.validate)
cli.add_command(_add.add)
cli.add_command(_check_remote.check_remote)
cli.add_command(_ls.ls)
cli.add_command(_pull.pull)
cli.add_command(_pull.info)
cli.add_command(_pull.catalogue)
cli.add_command(_sync.sync)
cli.add_command(_sync.env)
cli.add_command(_sync.check_mirror)
cli.add_command(_card.card)
cli.add_command(_demo.demo)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``argv`` defaults to ``sys.argv[1:]``); exits."""
    run(cli, argv)
