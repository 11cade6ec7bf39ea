"""Summaries of registry entries, for ``nlmr ls`` and the demo."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import asdict, dataclass
from typing import Any

from nlmr.cards import AnyCard, Kind
from nlmr.errors import CardError
from nlmr.registry import EntryPaths, Registry


@dataclass(frozen=True)
class EntrySummary:
    """One line of a listing.

    Attributes:
        status: ``stored`` when at least one revision has files (a manifest), else ``catalogued``.
    """

    id: str
    type: Kind
    title: str
    languages: tuple[str, ...]
    license: str
    revisions: int
    stored_revisions: int
    default_revision: str | None
    status: str

    @classmethod
    def of(cls, card: AnyCard, paths: EntryPaths) -> EntrySummary:
        stored = sum(paths.manifest(r.name).is_file() for r in card.revisions)
        default = card.default_revision
        return cls(
            id=card.id,
            type=card.type,
            title=card.title,
            languages=card.languages,
            license=card.license,
            revisions=len(card.revisions),
            stored_revisions=stored,
            default_revision=default.name if default else None,
            status="stored" if stored else "catalogued",
        )


@dataclass(frozen=True)
class Listing:
    """Entries that loaded, and the card files that did not (with their first error)."""

    entries: tuple[EntrySummary, ...]
    invalid: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"entries": [asdict(e) for e in self.entries], "invalid": list(self.invalid)}


def list_entries(
    registry: str | os.PathLike[str], *, pattern: str | None = None, kind: Kind | None = None
) -> Listing:
    """Summarise the registry's entries.

    Args:
        registry: the registry checkout.
        pattern: a glob over ids, matched case-insensitively (``ltg/*``, ``*bert*``).
        kind: only models or only datasets.

    Raises:
        RegistryNotFoundError: ``registry`` has no models/ or datasets/.
    """
    from nlmr.validate import load_card

    reg = Registry(registry)
    reg.check_exists()
    entries: list[EntrySummary] = []
    invalid: list[str] = []
    for paths in reg.entries(kind):
        if pattern and not fnmatch.fnmatch(paths.id.lower(), pattern.lower()):
            continue
        try:
            card = load_card(paths.card)
        except CardError as exc:
            invalid.append(str(exc))
            continue
        entries.append(EntrySummary.of(card, paths))
    return Listing(tuple(entries), tuple(invalid))


@dataclass(frozen=True)
class CatalogueSummary:
    """One line of a listing read from catalogues (mirrors, the store's).

    Attributes:
        revisions: the revisions any source has.
        files, size: files and bytes of the default revision (or of the last one by name,
            when there is no default).
        where: the nearest source holding the entry (``mirror /path``, ``catalogue URL``,
            ``registry DIR``): what ``nlmr pull`` would use for the default revision.
    """

    id: str
    type: str
    title: str
    languages: tuple[str, ...]
    license: str
    revisions: tuple[str, ...]
    default_revision: str | None
    files: int
    size: int
    where: str


def list_catalogues(
    resolver: Any, *, pattern: str | None = None, kind: str | None = None
) -> list[CatalogueSummary]:
    """Every entry the resolver's sources hold (nearest source first), filtered.

    Args:
        resolver: a :class:`nlmr.resolver.Resolver`.
        pattern: a glob over ids, case-insensitive.
        kind: only models or only datasets.
    """
    seen: dict[str, list[Any]] = {}  # key -> [(entry, source) nearest first]
    for source in resolver.sources(tolerant=True):
        for key, entry in source.catalogue.entries.items():
            seen.setdefault(key, []).append((entry, source))
    out = []
    for key in sorted(seen):
        entry, source = seen[key][0]
        if kind and entry.kind != kind:
            continue
        if pattern and not fnmatch.fnmatch(entry.id.lower(), pattern.lower()):
            continue
        shown = entry.revision(entry.default_revision) if entry.default_revision else None
        if shown is None and entry.revisions:
            shown = entry.revisions[-1]
        names = {r.name for e, _ in seen[key] for r in e.revisions}
        out.append(
            CatalogueSummary(
                id=entry.id,
                type=entry.kind,
                title=entry.title,
                languages=entry.languages,
                license=entry.license,
                revisions=tuple(sorted(names)),
                default_revision=entry.default_revision,
                files=len(shown.files) if shown else 0,
                size=shown.size if shown else 0,
                where=source.describe(),
            )
        )
    return out
