"""``nlmr card``: cards to and from Hugging Face README.md files."""

from __future__ import annotations

import click

from nlmr.cli._options import registry_option


@click.group()
def card() -> None:
    """Convert cards to and from Hugging Face README.md files."""


@card.command("export")
@click.argument("entry_id")
@registry_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    help="Write to this file instead of standard output.",
)
def export(entry_id: str, registry_dir: str | None, output: str | None) -> None:
    """Render the card of ENTRY_ID (org/name) as a Hugging Face README.md.

    The front matter uses the Hub's vocabulary (language, license, library_name,
    pipeline_tag, datasets, base_model, model-index…); fields the Hub has no
    name for go under an `nlmr:` key, so `nlmr card import` restores the card.
    """
    from nlmr import config
    from nlmr.fsutil import atomic_write
    from nlmr.hfreadme import render_readme
    from nlmr.registry import Registry

    text = render_readme(Registry(config.registry_path(registry_dir)).load(entry_id))
    if output:
        atomic_write(output, text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@card.command("import")
@click.argument("readme", type=click.Path(exists=True, dir_okay=False, path_type=str))
@click.option("--id", "entry_id", required=True, help="The entry id, org/name.")
@click.option(
    "--type",
    "kind",
    type=click.Choice(["model", "dataset"]),
    help="Card type (default: from the README's nlmr: block, else model).",
)
@registry_option
@click.option("--force", is_flag=True, help="Replace an existing card.yaml.")
@click.option("--dry-run", is_flag=True, help="Print the card instead of writing it.")
def import_(
    readme: str,
    entry_id: str,
    kind: str | None,
    registry_dir: str | None,
    force: bool,
    dry_run: bool,
) -> int:
    """Create a card from a Hugging Face README.md (its front matter and body).

    The card is written to <registry>/<models|datasets>/<org>/<name>/card.yaml and
    validated; what the README could not provide (creators, maintainers…) is
    listed for you to fill in.
    """
    from nlmr import config
    from nlmr.cards import card_to_yaml
    from nlmr.errors import OutputExistsError
    from nlmr.fsutil import atomic_write
    from nlmr.hfreadme import parse_readme
    from nlmr.registry import CARD_FILE, KIND_DIRS, check_id
    from nlmr.validate import validate as run_validation

    problem = check_id(entry_id)
    if problem:
        raise click.BadParameter(problem, param_hint="--id")
    with open(readme, encoding="utf-8", errors="replace") as fh:
        data = parse_readme(fh.read(), kind=kind, entry_id=entry_id)  # type: ignore[arg-type]
    text = card_to_yaml(data)
    if dry_run:
        click.echo(text, nl=False)
        return 0
    target = config.registry_path(registry_dir) / KIND_DIRS[data["type"]] / entry_id / CARD_FILE
    if target.exists() and not force:
        raise OutputExistsError(str(target))
    atomic_write(target, text)
    click.echo(f"wrote {target}", err=True)
    report = run_validation([str(target)])
    if report.errors:
        click.echo("to do before the card is valid:", err=True)
        for item in report.errors:
            click.echo(f"  {item.format()}", err=True)
    return 0
