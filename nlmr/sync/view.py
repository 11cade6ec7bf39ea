"""What the registry says a target should hold: the first step of a sync.

Reading every card and manifest costs about a millisecond each, which a no-op
sync of a thousand revisions cannot afford. So each entry is summarised once and
the summary is cached in the target's private state, keyed by the stat of its
card and manifest files; an unchanged entry is never parsed again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlmr.catalogue import CatalogueEntry, PublishedRevision
from nlmr.errors import CardError, NlmrError
from nlmr.registry import KIND_DIRS, MANIFEST_SUFFIX, EntryPaths, Registry
from nlmr.target import Target

CACHE_VERSION = 2


@dataclass(frozen=True)
class WantedRevision:
    """A revision the target should hold."""

    name: str
    id: str
    date: str | None
    default: bool
    yanked: bool
    manifest: str | None  # path of the manifest, None when the revision has no stored files
    manifest_sha256: str | None


@dataclass(frozen=True)
class WantedEntry:
    """An entry of the registry that the target selects, with the summary the catalogue needs."""

    kind: str
    id: str
    card: str  # path of card.yaml
    title: str
    summary: str
    license: str
    languages: tuple[str, ...]
    tags: tuple[str, ...]
    revisions: tuple[WantedRevision, ...]
    framework: str | None = None  # the library that loads a model

    @property
    def default(self) -> WantedRevision | None:
        return next((r for r in self.revisions if r.default), None)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    def catalogue_entry(
        self,
        default_revision: str | None = None,
        revisions: tuple[PublishedRevision, ...] = (),
        mirrors: tuple[str, ...] = (),
    ) -> CatalogueEntry:
        """The catalogue's entry for this card, holding ``revisions``."""
        return CatalogueEntry(
            kind=self.kind,
            id=self.id,
            title=self.title,
            summary=self.summary,
            license=self.license,
            languages=self.languages,
            tags=self.tags,
            framework=self.framework,
            default_revision=default_revision,
            revisions=revisions,
            mirrors=mirrors,
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WantedEntry:
        return cls(
            kind=d["kind"],
            id=d["id"],
            card=d["card"],
            title=d["title"],
            summary=d["summary"],
            license=d["license"],
            languages=tuple(d["languages"]),
            tags=tuple(d["tags"]),
            revisions=tuple(WantedRevision(**r) for r in d["revisions"]),
            framework=d.get("framework"),
        )


@dataclass(frozen=True)
class RegistryView:
    """Every selected entry, and the cards that could not be read (they are skipped)."""

    entries: tuple[WantedEntry, ...]
    problems: tuple[str, ...]
    parsed: int  # entries whose files were read this time (the rest came from the cache)


def _fingerprint(paths: EntryPaths) -> list[Any]:
    """Stat of the card and of every manifest: changes whenever one is rewritten."""
    st = os.stat(paths.card)
    out: list[Any] = [st.st_mtime_ns, st.st_size, st.st_ino]
    try:
        names = sorted(os.listdir(paths.revisions_dir))
    except FileNotFoundError:
        return out
    for name in names:
        if name.endswith(MANIFEST_SUFFIX):
            s = os.stat(paths.revisions_dir / name)
            out.append([name, s.st_mtime_ns, s.st_size, s.st_ino])
    return out


def _summarise(paths: EntryPaths) -> WantedEntry:
    from nlmr.validate import load_card

    card = load_card(paths.card)
    revisions = []
    for rev in card.revisions:
        manifest = paths.manifest(rev.name)
        digest: str | None = None
        if manifest.is_file():
            digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
        revisions.append(
            WantedRevision(
                name=rev.name,
                id=rev.id,
                date=rev.date,
                default=rev.default,
                yanked=rev.yanked is not None,
                manifest=str(manifest) if digest else None,
                manifest_sha256=digest,
            )
        )
    return WantedEntry(
        kind=card.type,
        id=card.id,
        card=str(paths.card),
        title=card.title,
        summary=card.summary,
        license=card.license,
        languages=tuple(card.languages),
        tags=tuple(card.tags),
        revisions=tuple(revisions),
        framework=getattr(card, "framework", None),
    )


def _walk(root: Path, kinds: tuple[str, ...]) -> list[EntryPaths]:
    # os.scandir rather than Registry.entries: a thousand entries, no per-entry is_file()
    out: list[EntryPaths] = []
    for kind in kinds:
        base = root / KIND_DIRS[kind]  # type: ignore[index]
        try:
            orgs = sorted(e.name for e in os.scandir(base) if e.is_dir())
        except FileNotFoundError:
            continue
        for org in orgs:
            for e in sorted(os.scandir(base / org), key=lambda e: e.name):
                if e.is_dir():
                    out.append(EntryPaths(root, kind, org, e.name))  # type: ignore[arg-type]
    return out


def read_registry(
    registry: Registry, target: Target, cache_file: Path | None, *, write_cache: bool = True
) -> RegistryView:
    """The entries of ``registry`` that ``target`` selects.

    Args:
        cache_file: the target's summary cache (read, and rewritten when it changed).
        write_cache: False for a dry run, which changes nothing on the target.

    Raises:
        RegistryNotFoundError: ``registry`` is not a registry.
    """
    registry.check_exists()
    cache: dict[str, Any] = {}
    if cache_file is not None:
        try:
            loaded = json.loads(cache_file.read_bytes())
            if loaded.get("version") == CACHE_VERSION:
                cache = loaded["entries"]
        except (OSError, ValueError, KeyError, AttributeError):
            cache = {}
    fresh: dict[str, Any] = {}
    entries: list[WantedEntry] = []
    problems: list[str] = []
    parsed = 0
    for paths in _walk(registry.root, target.select.kinds):
        key = f"{paths.kind}:{paths.id}"
        try:
            fp = _fingerprint(paths)
        except FileNotFoundError:
            continue  # a directory without a card
        hit = cache.get(key)
        if hit is not None and hit["fp"] == fp:
            entry = WantedEntry.from_dict(hit["entry"])
        else:
            parsed += 1
            try:
                entry = _summarise(paths)
            except (CardError, NlmrError) as exc:
                problems.append(f"{exc} (skipped; run `nlmr validate`)")
                continue
        fresh[key] = {"fp": fp, "entry": entry.to_dict()}
        if target.select.selects(entry.kind, entry.id, entry.tags):
            entries.append(entry)
    if write_cache and cache_file is not None and fresh != cache:
        import contextlib

        from nlmr.fsutil import atomic_write

        with contextlib.suppress(OSError):  # only a cache: losing it costs time, not data
            atomic_write(
                cache_file,
                json.dumps({"version": CACHE_VERSION, "entries": fresh}, separators=(",", ":")),
            )
    return RegistryView(tuple(entries), tuple(problems), parsed)
