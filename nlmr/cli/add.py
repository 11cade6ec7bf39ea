"""``nlmr add``."""

from __future__ import annotations

import click

from nlmr.cli._options import registry_option
from nlmr.cli._output import echo_json, human_bytes


@click.command()
@click.argument("source")
@click.option("--id", "entry_id", required=True, help="The entry id in the registry, org/name.")
@click.option("--revision", help="Revision name (default: main, or the snapshot's ref).")
@click.option(
    "--type",
    "kind",
    type=click.Choice(["model", "dataset"]),
    help="Entry type (default: the existing card's, else detected).",
)
@registry_option
@click.option("--remote", help="Store URL (default: the registry's DVC remote, or NLMR_REMOTE).")
@click.option("--endpoint-url", help="S3 endpoint of a non-AWS store.")
@click.option(
    "--default/--no-default",
    "make_default",
    default=None,
    help="Make this revision the default (a new entry's first revision always is).",
)
@click.option("--title", help="Title, for a new card.")
@click.option("--summary", help="One-sentence summary, for a new card.")
@click.option("--license", "license_", help="SPDX license expression, for a new card.")
@click.option("--language", "languages", multiple=True, help="BCP-47 tag (repeatable).")
@click.option("--creator", "creators", multiple=True, help="Creator's name (repeatable).")
@click.option("--maintainer", "maintainers", multiple=True, help="GitHub handle (repeatable).")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), help="Concurrent transfers (default 8).")
@click.option("--dry-run", is_flag=True, help="Hash and plan; upload and write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars, no summary.")
def add(
    source: str,
    entry_id: str,
    revision: str | None,
    kind: str | None,
    registry_dir: str | None,
    remote: str | None,
    endpoint_url: str | None,
    make_default: bool | None,
    title: str | None,
    summary: str | None,
    license_: str | None,
    languages: tuple[str, ...],
    creators: tuple[str, ...],
    maintainers: tuple[str, ...],
    jobs: int | None,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
) -> int:
    """Add a model or dataset revision: hash, upload to the store, write manifest, pointer, card.

    SOURCE is a directory (what save_pretrained writes, or a dataset folder), a
    snapshot in a Hugging Face cache (…/models--org--name/snapshots/<commit>),
    or a Hub repo id (downloaded with huggingface_hub when online). Pickle
    weights are converted to safetensors first. Only objects the store lacks
    are uploaded, file objects before the directory object, so an interrupted
    add is resumed by running it again. The DVC pointer is what `dvc add`
    writes, so `dvc pull` in a clone of the registry works too.
    """
    from nlmr import config
    from nlmr.add import add as run_add

    fields = {
        "title": title,
        "summary": summary,
        "license": license_,
        "languages": list(languages) or None,
        "creators": [{"name": c} for c in creators] or None,
        "maintainers": list(maintainers) or None,
    }
    report = run_add(
        source,
        entry_id,
        registry=config.registry_path(registry_dir),
        revision=revision,
        kind=kind,  # type: ignore[arg-type]  # click.Choice guarantees model|dataset
        remote=remote,
        endpoint_url=endpoint_url,
        card_fields={k: v for k, v in fields.items() if v},
        make_default=make_default,
        jobs=jobs,
        dry_run=dry_run,
        progress=False if (quiet or as_json) else None,
    )
    if as_json:
        echo_json(report.to_dict())
        return 0
    if quiet:
        return 0
    verb = "would add" if dry_run else "added"
    click.echo(
        f"{verb} {report.entry_id}@{report.revision} ({report.kind}, revision "
        f"{report.revision_id[:12]}): {report.files} file(s), {human_bytes(report.bytes)}"
    )
    if report.converted:
        click.echo(
            f"converted {', '.join(report.converted['pickles'])} -> "
            f"{', '.join(report.converted['safetensors'])}"
        )
    if not dry_run:
        click.echo(
            f"store {report.remote}: uploaded {len(report.uploaded)} object(s) "
            f"({human_bytes(report.uploaded_bytes)}), {report.present} already there"
        )
        for path in report.written:
            click.echo(f"wrote {path}")
        if report.unchanged and not report.written:
            click.echo("already added: nothing changed")
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if report.problems:
        click.echo("the card needs more before it validates:", err=True)
        for line in report.problems:
            click.echo(f"  {line}", err=True)
    return 0
