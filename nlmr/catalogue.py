"""The catalogue a mirror publishes at ``ROOT/catalogue.json``: what it holds, with manifests.

``nlmr sync`` keeps it; ``nlmr pull``, ``nlmr search`` and the site read it, so a
login node can resolve ``org/name@revision`` and verify every file without a
registry checkout. It is also the sync engine's record of what the target holds:
the next plan starts from it (never from re-hashing the tree). Schema:
``schemas/catalogue.schema.json``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from nlmr.errors import CardError
from nlmr.manifest import ManifestFile

CATALOGUE_FILE = "catalogue.json"
#: Where a store keeps its catalogue, relative to the store's URL (``nlmr catalogue --upload``).
STORE_CATALOGUE_KEY = "nlmr/catalogue.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PublishedRevision:
    """A revision present on the target.

    Attributes:
        files: the files materialized (the manifest, after the target's file filter).
        removal_since: when the revision left the registry (or was yanked); it is removed
            once the target's grace period has passed. None while it is wanted.
    """

    name: str
    id: str
    date: str | None
    published: str
    manifest_sha256: str
    files: tuple[ManifestFile, ...]
    registry_commit: str | None = None
    removal_since: str | None = None

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "id": self.id,
            "date": self.date,
            "published": self.published,
            "manifest_sha256": self.manifest_sha256,
            "registry_commit": self.registry_commit,
            "size": self.size,
            "files": [f.to_dict() for f in self.files],
        }
        if self.removal_since:
            out["removal_since"] = self.removal_since
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PublishedRevision:
        return cls(
            name=d["name"],
            id=d["id"],
            date=d.get("date"),
            published=d["published"],
            manifest_sha256=d["manifest_sha256"],
            files=tuple(ManifestFile.from_dict(f) for f in d["files"]),
            registry_commit=d.get("registry_commit"),
            removal_since=d.get("removal_since"),
        )


@dataclass(frozen=True)
class CatalogueEntry:
    """One entry on the target: its card summary, its revisions, where to load it."""

    kind: str
    id: str
    title: str
    summary: str
    license: str
    languages: tuple[str, ...]
    tags: tuple[str, ...]
    default_revision: str | None
    revisions: tuple[PublishedRevision, ...]
    framework: str | None = None
    #: in a store's catalogue: the mirror targets that select the entry
    mirrors: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"

    def revision(self, name: str) -> PublishedRevision | None:
        return next((r for r in self.revisions if r.name == name), None)

    def with_revision(self, rev: PublishedRevision) -> CatalogueEntry:
        kept = [r for r in self.revisions if r.name != rev.name]
        return replace(self, revisions=tuple(sorted([*kept, rev], key=lambda r: r.name)))

    def without_revision(self, name: str) -> CatalogueEntry:
        return replace(self, revisions=tuple(r for r in self.revisions if r.name != name))

    def to_dict(self) -> dict[str, Any]:
        from nlmr.layout import KIND_DIRS, hub_repo_name

        return {
            "kind": self.kind,
            "id": self.id,
            "title": self.title,
            "summary": self.summary,
            "license": self.license,
            "languages": list(self.languages),
            "tags": list(self.tags),
            "framework": self.framework,
            "default_revision": self.default_revision,
            "paths": {
                "plain": f"{KIND_DIRS[self.kind]}/{self.id}",
                "hub": f"hub/{hub_repo_name(self.kind, self.id)}",
            },
            "revisions": [r.to_dict() for r in self.revisions],
            **({"mirrors": list(self.mirrors)} if self.mirrors else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CatalogueEntry:
        return cls(
            kind=d["kind"],
            id=d["id"],
            title=d["title"],
            summary=d["summary"],
            license=d["license"],
            languages=tuple(d["languages"]),
            tags=tuple(d["tags"]),
            default_revision=d.get("default_revision"),
            revisions=tuple(PublishedRevision.from_dict(r) for r in d["revisions"]),
            framework=d.get("framework"),
            mirrors=tuple(d.get("mirrors", ())),
        )


@dataclass(frozen=True)
class Catalogue:
    """Everything a target holds.

    Attributes:
        target: name, root, backend and layouts of the target that wrote it.
        entries: by ``kind:org/name``.
        mirrors: in a store's catalogue, the registry's mirror targets (name, root,
            description, layouts, revisions), for the load lines of ``nlmr info``.
    """

    target: Mapping[str, Any] = field(default_factory=dict)
    updated: str | None = None
    generator: str | None = None
    entries: Mapping[str, CatalogueEntry] = field(default_factory=dict)
    mirrors: tuple[Mapping[str, Any], ...] = ()

    def entry(self, kind: str, entry_id: str) -> CatalogueEntry | None:
        return self.entries.get(f"{kind}:{entry_id}")

    def find(self, entry_id: str) -> CatalogueEntry | None:
        """The entry with this id, model first."""
        return self.entry("model", entry_id) or self.entry("dataset", entry_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "generator": self.generator,
            "updated": self.updated,
            "target": dict(self.target),
            **({"mirrors": [dict(m) for m in self.mirrors]} if self.mirrors else {}),
            "entries": [self.entries[k].to_dict() for k in sorted(self.entries)],
        }

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=1, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Catalogue:
        entries = [CatalogueEntry.from_dict(e) for e in d.get("entries", [])]
        return cls(
            target=d.get("target", {}),
            updated=d.get("updated"),
            generator=d.get("generator"),
            entries={e.key: e for e in entries},
            mirrors=tuple(d.get("mirrors", ())),
        )


def load_catalogue(path: str | os.PathLike[str]) -> Catalogue:
    """Read a catalogue; an absent file is an empty catalogue.

    Raises:
        CardError: the file is not a catalogue nlmr can read.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        return Catalogue()
    return parse_catalogue(raw, str(p))


def parse_catalogue(raw: bytes, where: str) -> Catalogue:
    """A catalogue from its JSON bytes; ``where`` names it in errors.

    Raises:
        CardError: not a catalogue nlmr can read.
    """
    try:
        data = json.loads(raw)
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format_version {data.get('format_version')!r} is not supported")
        catalogue = Catalogue.from_dict(data)
        _check_names(catalogue)
        return catalogue
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CardError(
            where,
            f"not a readable catalogue: {exc}",
            hint="a newer nlmr may have written it; or remove it and re-run sync to rebuild",
        ) from exc


_ENTRY_ID = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$"
)
_REVISION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REVISION_ID = re.compile(r"^[0-9a-f]{40}$")


def _check_names(catalogue: Catalogue) -> None:
    """Everything a catalogue names becomes part of a path on disk: ids, revision names and
    ids, file paths must have the shapes the card schema gives them (a catalogue fetched
    from a URL must not be able to write outside the destination).

    Raises:
        ValueError: the first bad name, with where it is.
    """
    from nlmr.manifest import path_problems

    for e in catalogue.entries.values():
        if e.kind not in ("model", "dataset") or not _ENTRY_ID.match(e.id):
            raise ValueError(f"entry {e.kind}:{e.id!r} is not a valid kind and org/name")
        for r in e.revisions:
            if not _REVISION_NAME.match(r.name) or not _REVISION_ID.match(r.id):
                raise ValueError(f"{e.id}: revision {r.name!r} ({r.id!r}) is not a valid name/id")
            for _, problem in path_problems(f.path for f in r.files):
                raise ValueError(f"{e.id}@{r.name}: {problem}")
