"""The main job on an embedded default: what ``nlmr demo`` (and README's first command) runs.

It grows with each capability; today: validate the registry, list it, and
round-trip every card through a Hugging Face README.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nlmr.errors import RegistryNotFoundError


@dataclass(frozen=True)
class DemoResult:
    ok: bool
    registry: Path
    cards: int
    round_trips: int


def default_registry() -> Path:
    """The checkout's ``registry/`` when nlmr runs from one, else the copy inside the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "registry", here / "_registry"):
        if (candidate / "models").is_dir() or (candidate / "datasets").is_dir():
            return candidate
    raise RegistryNotFoundError(
        "no sample registry found in this installation", hint="pass --registry DIR"
    )


def run_demo(registry: str | Path | None, *, echo: Callable[[str], object] = print) -> DemoResult:
    """Run every step, printing what happens; never stops at the first failure."""
    from nlmr.cli._output import table
    from nlmr.hfreadme import card_from_readme, render_readme
    from nlmr.listing import list_entries
    from nlmr.registry import Registry
    from nlmr.validate import validate

    root = Path(registry) if registry else default_registry()
    echo(f"== 1/3 validate {root}")
    report = validate([root])
    for problem in report.problems:
        echo("  " + problem.format())
    echo(
        f"  {report.cards} card(s), {len(report.errors)} error(s), "
        f"{len(report.warnings)} warning(s)"
    )

    echo("== 2/3 catalogue")
    listing = list_entries(root)
    rows = [[e.id, e.type, ",".join(e.languages), e.license, e.status] for e in listing.entries]
    echo(table(["ID", "TYPE", "LANGUAGES", "LICENSE", "STATUS"], rows))

    echo("== 3/3 card -> Hugging Face README.md -> card")
    reg = Registry(root)
    same = 0
    for summary in listing.entries:
        card = reg.load(summary.id)
        back = card_from_readme(render_readme(card))
        same += back == card
        echo(f"  {summary.id}: {'identical' if back == card else 'DIFFERS'}")
    ok = report.ok() and not listing.invalid and same == len(listing.entries)
    echo("demo " + ("succeeded" if ok else "found problems (see above)"))
    return DemoResult(ok, root, report.cards, same)
