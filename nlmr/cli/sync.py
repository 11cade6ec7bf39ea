"""``nlmr sync`` and ``nlmr env``."""

from __future__ import annotations

from typing import Any

import click

from nlmr.cli._options import registry_option
from nlmr.cli._output import echo_json, human_bytes

_target_arg = click.argument("target_ref", metavar="[TARGET]", required=False)
_root_opt = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=str),
    help="Mirror root; without TARGET, the default target (POSIX, every default revision).",
)
_targets_opt = click.option(
    "--targets",
    "targets_dir",
    type=click.Path(file_okay=False, path_type=str),
    help="Directory of target files (default: ./sync).",
)


def resolve_target(target_ref: str | None, root: str | None, targets_dir: str | None) -> Any:
    """TARGET (a name in ./sync or a file), or the default target at --root."""
    from nlmr.errors import UsageError
    from nlmr.target import default_target, find_target, load_target

    if target_ref is None:
        if root is None:
            raise UsageError(
                "name a TARGET (a file in ./sync, or a path) or pass --root DIR",
                hint="`nlmr sync --root ./mirror` mirrors every default revision there",
            )
        return default_target(root)
    target = load_target(find_target(target_ref, targets_dir))
    if root is not None:
        from pathlib import Path

        target = target.with_root(Path(root).absolute())
    return target


@click.command("sync")
@_target_arg
@_root_opt
@_targets_opt
@registry_option
@click.option(
    "--remote", help="Store URL (default: the target's source, the registry's DVC remote)."
)
@click.option("--endpoint-url", help="S3 endpoint of a non-AWS store.")
@click.option("--dry-run", is_flag=True, help="Print what would be added, switched and removed.")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), help="Concurrent transfers (default 8).")
@click.option(
    "--wait",
    "lock_wait",
    type=click.FloatRange(0),
    default=0,
    show_default=True,
    help="Seconds to wait when another sync holds the target.",
)
@click.option(
    "--break-lock",
    is_flag=True,
    help="Take over a lock whose holder on another host stopped its heartbeat (check it first).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors (for cron); no progress bar.")
def sync(
    target_ref: str | None,
    root: str | None,
    targets_dir: str | None,
    registry_dir: str | None,
    remote: str | None,
    endpoint_url: str | None,
    dry_run: bool,
    jobs: int | None,
    lock_wait: float,
    break_lock: bool,
    as_json: bool,
    quiet: bool,
) -> int:
    """Materialize the registry on a mirror TARGET, read-only, in Hugging Face layouts.

    Writes ROOT/models/org/name@revision (plain trees; ROOT/models/org/name links
    to the default revision), ROOT/hub (a hub cache for HF_HUB_CACHE),
    ROOT/catalogue.json and the users' environment files. Every byte is checked
    against the manifest's sha256 before it is published; each revision appears
    at once. Exit status: 0 synced, 1 error, 2 usage, 3 partial failure (the
    failed revisions are named; the rest synced).
    """
    from nlmr.sync.engine import sync as run_sync
    from nlmr.sync.plan import summary_lines

    target = resolve_target(target_ref, root, targets_dir)

    def warn(message: str) -> None:
        if not as_json and not quiet:
            click.echo(f"warning: {message}", err=True)

    report = run_sync(
        target,
        registry=registry_dir,
        remote=remote,
        endpoint_url=endpoint_url,
        dry_run=dry_run,
        jobs=jobs,
        lock_wait=lock_wait,
        break_lock=break_lock,
        progress=False if (quiet or as_json) else None,
        warn=warn,
    )
    if as_json:
        echo_json(report.to_dict())
        return report.exit_code
    for failure in report.failed:
        where = f": {failure.file}" if failure.file else ""
        click.echo(f"nlmr: error: {failure.ref}{where}: {failure.error}", err=True)
    for conflict in report.plan.conflicts:
        click.echo(f"nlmr: error: {conflict.message}", err=True)
    if quiet:
        return report.exit_code
    plan = report.plan
    if dry_run:
        for line in summary_lines(plan, human_bytes):
            click.echo(line)
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
        total = sum(a.new_bytes for a in plan.additions)
        click.echo(
            f"dry run of {target.name} at {target.root}: {len(plan.additions)} to add "
            f"({human_bytes(total)} to transfer), {len(plan.switches)} default switch(es), "
            f"{len(plan.due_removals)} to remove, "
            f"{len(plan.removals) - len(plan.due_removals)} pending removal, "
            f"{plan.unchanged} unchanged",
            err=True,
        )
        return report.exit_code
    for ref in report.published:
        click.echo(f"published {ref}")
    for ref in report.switched:
        click.echo(f"default   {ref}")
    for ref in report.removed:
        click.echo(f"removed   {ref}")
    pending = [r for r in plan.removals if not r.due]
    for r in pending:
        click.echo(f"pending   {r.ref} (removal after the grace period; {r.reason})")
    status = "ok" if report.ok else f"{len(report.failed) + len(plan.conflicts)} problem(s)"
    click.echo(
        f"sync {target.name} at {target.root}: {len(report.published)} published, "
        f"{len(report.removed)} removed, {plan.unchanged} unchanged, "
        f"{human_bytes(report.transferred_bytes)} transferred in {report.seconds:.1f} s: {status}",
        err=True,
    )
    return report.exit_code


@click.command("env")
@_target_arg
@_root_opt
@_targets_opt
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["sh", "lmod"]),
    default="sh",
    show_default=True,
    help="A shell snippet to `eval`/`source`, or an Lmod module file.",
)
def env(target_ref: str | None, root: str | None, targets_dir: str | None, fmt: str) -> int:
    """Print the environment users need for a mirror TARGET (offline mode, the hub cache,
    writable per-user caches).

    `eval "$(nlmr env saga)"` in a job script, or install the module file that
    sync writes beside the mirror.
    """
    from nlmr.envfiles import render_lmod, render_shell, user_env

    target = resolve_target(target_ref, root, targets_dir)
    env_value = user_env(target)
    click.echo(render_shell(env_value) if fmt == "sh" else render_lmod(env_value), nl=False)
    return 0


@click.command("check-mirror")
@_target_arg
@_root_opt
@_targets_opt
@click.option("--deep", is_flag=True, help="Also hash every file and compare with its sha256.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_mirror(
    target_ref: str | None, root: str | None, targets_dir: str | None, deep: bool, as_json: bool
) -> int:
    """Check a mirror: every visible revision is whole, links and refs resolve, and the tree
    matches its catalogue (sizes; sha256 with --deep). Exit status 1 names each problem."""
    from nlmr.sync.check import check_mirror as run_check

    target = resolve_target(target_ref, root, targets_dir)
    report = run_check(target.root, deep=deep)
    if as_json:
        echo_json(report.to_dict())
    else:
        for problem in report.problems:
            click.echo(problem)
        status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        click.echo(
            f"{'deep check' if deep else 'check'} of {target.root}: {report.revisions} "
            f"revision(s), {report.files} file(s): {status}",
            err=True,
        )
    return 0 if report.ok else 1
