"""``nlmr ls``."""

from __future__ import annotations

from dataclasses import asdict

import click

from nlmr.cli._output import echo_json, human_bytes, table
from nlmr.cli._sources import make_resolver, source_options


@click.command()
@click.argument("pattern", required=False)
@click.option("--type", "kind", type=click.Choice(["model", "dataset"]), help="Only this kind.")
@source_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def ls(
    pattern: str | None,
    kind: str | None,
    mirrors: tuple[str, ...],
    catalogue: str | None,
    remote: str | None,
    endpoint_url: str | None,
    registry_dir: str | None,
    as_json: bool,
) -> int:
    """List entries, optionally those whose id matches PATTERN (a glob, e.g. 'ltg/*').

    Reads the configured mirrors and the store's catalogue (what `nlmr pull` can
    fetch: revisions, size, where from). With --registry, or when nothing is
    configured and ./registry exists, lists the registry's cards instead: each
    entry's revisions and whether it is stored or only catalogued.
    """
    from nlmr import config

    resolver = make_resolver(mirrors, catalogue, remote, endpoint_url, None)
    s = resolver.settings
    configured = bool(s.mirrors or s.catalogue or s.remote)
    if registry_dir is not None or not configured:
        registry = config.registry_path(registry_dir)
        if registry_dir is None and not registry.is_dir():
            from nlmr.errors import NotFoundError

            raise NotFoundError(
                "catalogue",
                "nothing to list: no mirror or store is configured and there is no ./registry",
                hint="set NLMR_REMOTE to the store (or NLMR_MIRRORS to a mirror root), or put "
                "them in ~/.config/nlmr/config.yaml; --registry DIR lists a checkout",
            )
        return _ls_registry(registry, pattern, kind, as_json)
    from nlmr.listing import list_catalogues

    rows = list_catalogues(resolver, pattern=pattern, kind=kind)
    if as_json:
        echo_json({"entries": [asdict(r) for r in rows], "problems": resolver.problems})
        return 0
    if rows:
        click.echo(
            table(
                [
                    "ID",
                    "TYPE",
                    "LANGUAGES",
                    "LICENSE",
                    "REVISIONS",
                    "FILES",
                    "SIZE",
                    "FROM",
                    "TITLE",
                ],
                [
                    [
                        r.id,
                        r.type,
                        ",".join(r.languages),
                        r.license,
                        ",".join(r.revisions),
                        str(r.files),
                        human_bytes(r.size),
                        r.where,
                        r.title,
                    ]
                    for r in rows
                ],
            )
        )
    click.echo(f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}", err=True)
    for problem in resolver.problems:
        click.echo(f"warning: {problem}", err=True)
    return 0


def _ls_registry(registry: object, pattern: str | None, kind: str | None, as_json: bool) -> int:
    from nlmr.listing import list_entries

    listing = list_entries(registry, pattern=pattern, kind=kind)  # type: ignore[arg-type]
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
