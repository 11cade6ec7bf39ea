"""``nlmr check-remote``."""

from __future__ import annotations

import click

from nlmr.cli._output import echo_json


@click.command("check-remote")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--deep", is_flag=True, help="Stream every object and verify md5 and sha256.")
@click.option("--remote", help="Store URL (default: the registry's DVC remote, or NLMR_REMOTE).")
@click.option("--endpoint-url", help="S3 endpoint of a non-AWS store.")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), help="Concurrent requests (default 8).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (for CI).")
def check_remote(
    paths: tuple[str, ...],
    deep: bool,
    remote: str | None,
    endpoint_url: str | None,
    jobs: int | None,
    as_json: bool,
) -> int:
    """Check that every stored revision's objects are on the store, without downloading.

    For each revision of the cards under PATHS (default: the registry): the
    directory object exists and its md5 matches the pointer, it lists exactly
    the manifest's files, and every file object exists with the manifest's
    size. Catches what `dvc status -c` misses: a file object deleted under an
    existing directory object. Exit status 1 names each problem.
    """
    from nlmr import config
    from nlmr.checkremote import check_remote as run_check

    targets = list(paths) or [str(config.registry_path())]
    report = run_check(targets, remote=remote, endpoint_url=endpoint_url, deep=deep, jobs=jobs)
    if as_json:
        echo_json(report.to_dict())
    else:
        for problem in report.problems:
            click.echo(problem.format())
        mode = "deep check" if deep else "check"
        status = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        click.echo(
            f"{mode} of {report.revisions} revision(s), {report.objects} object(s) on "
            f"{report.remote or '(no stored revisions)'}: {status}",
            err=True,
        )
    return 0 if report.ok else 1
