"""``nlmr ls``."""

from __future__ import annotations

import click

from nlmr.cli._options import registry_option
from nlmr.cli._output import echo_json, table


@click.command()
@click.argument("pattern", required=False)
@registry_option
@click.option("--type", "kind", type=click.Choice(["model", "dataset"]), help="Only this kind.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def ls(pattern: str | None, registry_dir: str | None, kind: str | None, as_json: bool) -> int:
    """List the registry's entries, optionally those whose id matches PATTERN (a glob).

    Shows each entry's languages, license, revisions and whether it is stored
    (has files to sync and pull) or only catalogued.
    """
    from nlmr import config
    from nlmr.listing import list_entries

    listing = list_entries(config.registry_path(registry_dir), pattern=pattern, kind=kind)  # type: ignore[arg-type]
    if as_json:
        echo_json(listing.to_dict())
    else:
        rows = [
            [
                e.id,
                e.type,
                ",".join(e.languages),
                e.license,
                f"{e.stored_revisions}/{e.revisions}",
                e.status,
                e.title,
            ]
            for e in listing.entries
        ]
        if rows:
            click.echo(
                table(["ID", "TYPE", "LANGUAGES", "LICENSE", "STORED", "STATUS", "TITLE"], rows)
            )
        click.echo(
            f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}"
            f" ({sum(e.status == 'stored' for e in listing.entries)} stored)",
            err=True,
        )
        for bad in listing.invalid:
            click.echo(f"skipped invalid card: {bad}", err=True)
    if listing.invalid:
        click.echo(
            f"{len(listing.invalid)} invalid card(s): run `nlmr validate` for details", err=True
        )
        return 1
    return 0
