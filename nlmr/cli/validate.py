"""``nlmr validate``."""

from __future__ import annotations

import click

from nlmr.cli._output import echo_json


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format; json is for CI.",
)
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option("-q", "--quiet", is_flag=True, help="Print problems only, no summary.")
def validate(paths: tuple[str, ...], fmt: str, strict: bool, quiet: bool) -> int:
    """Check cards, manifests and DVC pointers; report every problem at once.

    PATHS are card.yaml files, entry directories or whole registries
    (default: the registry, i.e. --registry/NLMR_REGISTRY/./registry).
    Each problem is one line, `path:line:col: field: message`.
    Exit status: 0 valid, 1 invalid, 2 usage error.
    """
    from nlmr import config
    from nlmr.validate import validate as run_validation

    targets = list(paths) or [str(config.registry_path())]
    report = run_validation(targets)
    ok = report.ok(strict=strict)
    if fmt == "json":
        data = report.to_dict()
        data["ok"] = ok
        echo_json(data)
    else:
        for problem in report.problems:
            click.echo(problem.format())
        if not quiet:
            n_err, n_warn = len(report.errors), len(report.warnings)
            status = "ok" if ok else "invalid"
            click.echo(
                f"{status}: {report.cards} card(s), {report.files} generated file(s); "
                f"{n_err} error(s), {n_warn} warning(s)",
                err=True,
            )
    return 0 if ok else 1
