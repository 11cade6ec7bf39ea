"""Where errors become messages: one line, the next step, an exit code.

Exit codes: 0 success, 1 an error (invalid input, a failed check), 2 a usage
error, 130 interrupted. ``NLMR_DEBUG=1`` re-raises so the traceback shows.
"""

from __future__ import annotations

import sys

import click

from nlmr.errors import NlmrError, UsageError


def _say(message: str, hint: str | None = None) -> None:
    click.echo(f"nlmr: error: {message}", err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)


def run(command: click.Command, argv: list[str] | None = None) -> None:
    """Run a click command with nlmr's error handling, then exit."""
    from nlmr import config

    debug = config.debug()
    try:
        code = command.main(args=argv, prog_name="nlmr", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # usage errors: exit 2 with click's own message
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except NlmrError as exc:
        if debug:
            raise
        _say(exc.message, exc.hint)
        sys.exit(2 if isinstance(exc, UsageError) else 1)
    except OSError as exc:  # a disk or permission problem the library did not anticipate
        if debug:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        hint = "rerun with NLMR_DEBUG=1 for the traceback"
        if isinstance(exc, PermissionError):
            hint = "check that path's permissions, or choose a place you can write to"
        elif isinstance(exc, FileExistsError | NotADirectoryError):
            hint = "a file is where a directory is needed (or the reverse): choose another path"
        _say(f"{exc.strerror or exc}{where}", hint)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
