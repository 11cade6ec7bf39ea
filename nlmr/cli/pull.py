"""``nlmr pull``, ``nlmr info`` and ``nlmr catalogue``."""

from __future__ import annotations

import click

from nlmr.cli._options import kind_option, registry_option
from nlmr.cli._output import echo_json, human_bytes
from nlmr.cli._sources import make_resolver, source_options


@click.command()
@click.argument("ref", metavar="ORG/NAME[@REVISION]")
@click.option(
    "--to",
    "to",
    type=click.Path(file_okay=False, path_type=str),
    help="Fill this plain directory (save_pretrained layout).",
)
@click.option(
    "--hf-cache",
    "hf_cache",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[DIR]",
    help="Fill a Hugging Face cache (the default; DIR defaults to HF_HUB_CACHE, "
    "else $HF_HOME/hub, else ~/.cache/huggingface/hub).",
)
@click.option("--revision", help="A revision name, tag or full commit (instead of @REVISION).")
@click.option(
    "--include",
    multiple=True,
    metavar="GLOB",
    help="Only files matching (repeatable; a pattern without / matches file names).",
)
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files matching (repeatable).")
@click.option(
    "--link",
    is_flag=True,
    help="Copy nothing: print the path inside the nearest mirror, to load in place.",
)
@click.option(
    "--mode",
    type=click.Choice(["auto", "reflink", "hardlink", "copy"]),
    default="auto",
    show_default=True,
    help="From a mirror: how files are made (auto clones where the filesystem "
    "can, else copies; every file is hashed either way).",
)
@kind_option
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 256),
    help="Concurrent transfers (default NLMR_JOBS or 8).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace local files that differ from the catalogue (default: keep them and fail).",
)
@click.option(
    "--verify",
    is_flag=True,
    help="Re-hash files already present instead of trusting sizes and records.",
)
@click.option("--fsync", is_flag=True, help="Make every file durable before it is renamed in.")
@click.option("--dry-run", is_flag=True, help="Only say what would be fetched.")
@click.option(
    "--break-lock",
    is_flag=True,
    help="Take over the lock of a pull into the same place that another host left "
    "behind (its heartbeat stopped; check that it is gone).",
)
@source_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors; no progress bar.")
def pull(
    ref: str,
    to: str | None,
    hf_cache: str | None,
    revision: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    link: bool,
    mode: str,
    kind: str | None,
    jobs: int | None,
    force: bool,
    verify: bool,
    fsync: bool,
    dry_run: bool,
    break_lock: bool,
    mirrors: tuple[str, ...],
    catalogue: str | None,
    remote: str | None,
    endpoint_url: str | None,
    registry_dir: str | None,
    as_json: bool,
    quiet: bool,
) -> int:
    """Fetch a model or dataset, verified, from the nearest mirror or the store.

    \b
    nlmr pull ltg/norbert3-base                 # into your HF cache
    nlmr pull ltg/norbert3-base@v1.0 --to DIR   # a plain directory
    nlmr pull ltg/norbert3-base --link          # the path on this cluster's mirror

    After a pull into the HF cache, from_pretrained("org/name") works offline
    (HF_HUB_OFFLINE=1). Every byte is checked against the catalogue's sha256
    before a file appears; an interrupted pull resumes; a complete one does
    nothing. Exit status: 0 done, 1 error (failed files are named; the others
    are kept), 2 usage.
    """
    from nlmr.puller import pull as run_pull

    def note(message: str) -> None:
        if not quiet and not as_json:
            click.echo(message, err=True)

    from nlmr import config

    if hf_cache == "":  # --hf-cache without DIR: the user's own cache, named explicitly
        hf_cache = str(config.hf_hub_cache())
    resolver = make_resolver(mirrors, catalogue, remote, endpoint_url, registry_dir, jobs)
    report = run_pull(
        ref,
        revision,
        to=to,
        hf_cache=hf_cache,
        include=include,
        exclude=exclude,
        link=link,
        mode=mode,  # type: ignore[arg-type]
        kind=kind,
        jobs=jobs,
        force=force,
        verify=verify,
        fsync=fsync,
        dry_run=dry_run,
        break_lock=break_lock,
        resolver=resolver,
        progress=False if (quiet or as_json) else None,
        on_event=note,
    )
    if as_json:
        echo_json(report.to_dict())
        return 0 if report.ok else 1
    for path, error in report.failed:
        click.echo(f"nlmr: error: {report.ref}: {path}: {error}", err=True)
    if report.layout == "link":
        click.echo(report.path)
        return 0
    if not quiet:
        size = human_bytes(report.bytes)
        if dry_run:
            note(
                f"dry run: {report.ref} from {report.source}: {report.fetched} of "
                f"{report.files} file(s) to fetch ({human_bytes(report.fetched_bytes)} of "
                f"{size}), {report.present} already present"
            )
        elif report.complete:
            note(f"{report.ref}: already complete ({report.files} files, {size}); nothing to do")
        elif report.fetched == 0:
            note(
                f"{report.ref}: all {report.files} files were already present ({size}); "
                f"{'the snapshot and refs' if report.layout == 'hub' else 'the record'} updated"
            )
        else:
            how = ", ".join(f"{n} by {k}" for k, n in sorted(report.how.items()))
            rate = report.fetched_bytes / report.seconds if report.seconds else 0
            note(
                f"{report.ref} from {report.source}: {report.fetched} file(s) "
                f"({human_bytes(report.fetched_bytes)}{', ' + how if how else ''}) in "
                f"{report.seconds:.1f} s ({human_bytes(int(rate))}/s), "
                f"{report.present} already present"
            )
    if report.failed:
        click.echo(
            f"{len(report.failed)} file(s) failed; the others are in place and partial files "
            "are kept: rerun the same command to resume",
            err=True,
        )
        return 1
    if not dry_run:
        click.echo(report.path)
    return 0


@click.command()
@click.argument("ref", metavar="ORG/NAME[@REVISION]")
@click.option("--revision", help="Show this revision's files (default: the default revision).")
@kind_option
@click.option("--files/--no-files", default=True, show_default=True, help="List the files.")
@source_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(
    ref: str,
    revision: str | None,
    kind: str | None,
    files: bool,
    mirrors: tuple[str, ...],
    catalogue: str | None,
    remote: str | None,
    endpoint_url: str | None,
    registry_dir: str | None,
    as_json: bool,
) -> int:
    """Show an entry: revisions, files, sizes, license, and the lines to load it.

    The lines cover each mirror that holds it (the from_pretrained path, the
    HF_HUB_CACHE variant) and the pull command for anywhere else.
    """
    from nlmr.entryinfo import describe

    resolver = make_resolver(mirrors, catalogue, remote, endpoint_url, registry_dir)
    shown = describe(resolver, ref, revision, kind=kind)
    if as_json:
        echo_json(shown.to_dict())
        return 0
    e, rev = shown.entry, shown.revision
    click.echo(f"{e.id}  ({e.kind}{', ' + e.framework if e.framework else ''})")
    click.echo(f"  {e.title}")
    if e.summary:
        click.echo(f"  {e.summary}")
    click.echo(f"  license: {e.license}   languages: {', '.join(e.languages) or '-'}")
    if e.tags:
        click.echo(f"  tags: {', '.join(e.tags)}")
    click.echo(f"  from: {shown.source}")
    click.echo("revisions:")
    for r, where in shown.revisions:
        mark = " (default)" if r.name == e.default_revision else ""
        click.echo(
            f"  {r.name:<12} {r.id[:12]}  {r.date or '':<10}  {len(r.files):>5} files  "
            f"{human_bytes(r.size):>10}{mark}  on: {'; '.join(where)}"
        )
    if files:
        click.echo(f"files of {rev.name}:")
        for f in rev.files:
            click.echo(f"  {human_bytes(f.size):>10}  {f.path}")
    click.echo("to load it:")
    for what, text in shown.lines:
        click.echo(f"  # {what}")
        for line in text.splitlines():
            click.echo(f"  {line}")
    for n in shown.notes:
        click.echo(f"note: {n}", err=True)
    return 0


@click.command()
@registry_option
@click.option(
    "--targets",
    "targets_dir",
    type=click.Path(file_okay=False, path_type=str),
    help="Mirror targets to list in it (default: sync/ beside the registry).",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=str), help="Write it to this file."
)
@click.option(
    "--upload",
    is_flag=True,
    help="Put it in the store at nlmr/catalogue.json, where pull finds it.",
)
@click.option("--remote", help="The store (default: NLMR_REMOTE or the registry's DVC remote).")
@click.option("--endpoint-url", help="S3 endpoint of the store.")
def catalogue(
    registry_dir: str | None,
    targets_dir: str | None,
    output: str | None,
    upload: bool,
    remote: str | None,
    endpoint_url: str | None,
) -> int:
    """Build the store's catalogue: every stored revision, with its manifest.

    With it in the store (--upload), a machine with only `pip install nlmr` and
    the store's URL (NLMR_REMOTE) can pull anything, no registry checkout needed.
    Run it after merging cards (CI does, beside `nlmr sync`).
    """
    from nlmr import config
    from nlmr.fsutil import atomic_write
    from nlmr.remote import resolve_remote
    from nlmr.storecatalogue import build_catalogue, upload_catalogue

    registry = config.registry_path(registry_dir)
    store_url = ""
    found = None
    if upload or remote:
        found = resolve_remote(registry, url=remote, endpoint_url=endpoint_url)
        store_url = found.url
    cat, problems = build_catalogue(registry, remote_url=store_url, targets_dir=targets_dir)
    for p in problems:
        click.echo(f"warning: {p}", err=True)
    n = len(cat.entries)
    revs = sum(len(e.revisions) for e in cat.entries.values())
    if output:
        atomic_write(output, cat.to_json())
        click.echo(f"wrote {output}: {n} entries, {revs} revisions", err=True)
    if upload:
        assert found is not None
        url = upload_catalogue(found.open(), cat)
        click.echo(f"uploaded {url}: {n} entries, {revs} revisions", err=True)
    if not output and not upload:
        click.echo(cat.to_json().decode(), nl=False)
    return 0
