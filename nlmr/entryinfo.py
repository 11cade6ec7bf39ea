"""``nlmr info``: an entry's revisions and files, and the exact lines to load it.

Reads the same sources as ``nlmr pull`` (:mod:`nlmr.resolver`): local mirrors, then the
store's catalogue. The store's catalogue also names the registry's mirror targets, so
the lines cover every cluster that holds the entry, not only this one.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from nlmr.catalogue import CatalogueEntry, PublishedRevision
from nlmr.layout import HUB_DIR, KIND_DIRS, plain_name
from nlmr.resolver import Resolver, parse_ref


@dataclass(frozen=True)
class Place:
    """One mirror that holds the entry.

    Attributes:
        name: the target's name.
        root: the mirror root.
        local: True when it is a configured mirror on this machine (its catalogue was
            read); False when known from the store's catalogue.
        plain: the directory to ``from_pretrained``, if the target writes plain trees.
        hub_cache: the ``HF_HUB_CACHE`` to set, if it writes the hub-cache layout.
        revisions: the revisions it holds (None: not known, the target holds the default
            revision or all of them per ``revisions_policy``).
    """

    name: str
    root: str
    local: bool
    plain: str | None
    hub_cache: str | None
    revisions: tuple[str, ...] | None = None
    revisions_policy: str | None = None


@dataclass(frozen=True)
class EntryInfo:
    """What ``nlmr info`` shows."""

    entry: CatalogueEntry
    revision: PublishedRevision
    source: str
    places: tuple[Place, ...]
    lines: tuple[tuple[str, str], ...]  # (what, the line)
    notes: tuple[str, ...] = field(default=())
    #: every revision any source has, with the sources that have it (nearest first)
    revisions: tuple[tuple[PublishedRevision, tuple[str, ...]], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        e = self.entry.to_dict()
        e.pop("paths", None)
        e["revisions"] = []
        for r, where in self.revisions:
            d = r.to_dict()
            d.pop("files", None)
            e["revisions"].append({**d, "sources": list(where)})
        return {
            "entry": e,
            "revision": self.revision.to_dict(),
            "source": self.source,
            "places": [p.__dict__ for p in self.places],
            "load": [{"what": w, "line": line} for w, line in self.lines],
            "notes": list(self.notes),
        }


def loader(entry: CatalogueEntry, rev: PublishedRevision, where: str) -> str:
    """The Python call that loads ``where`` (a path or a hub id), by kind and framework."""
    arg = repr(where).replace("'", '"')
    if entry.kind == "dataset":
        return f"datasets.load_dataset({arg})"
    if entry.framework == "sentence-transformers":
        return f"sentence_transformers.SentenceTransformer({arg})"
    if entry.framework in (None, "transformers") and any(
        f.path == "config.json" for f in rev.files
    ):
        return f"transformers.AutoModel.from_pretrained({arg})"
    return f"{arg}  # {entry.framework or 'files'}: see the card for how to load it"


def describe(
    resolver: Resolver, ref: str, revision: str | None = None, *, kind: str | None = None
) -> EntryInfo:
    """Everything ``nlmr info`` prints about ``ref``.

    Raises:
        NotFoundError: no source has the entry (or that revision).
    """
    entry_id, rev_name = parse_ref(ref, revision)
    notes: list[str] = []
    found = resolver.locate(ref, revision, kind=kind)
    entry, rev = found.entry, found.revision
    places: list[Place] = []
    for src in resolver.mirrors():
        e = src.catalogue.entry(kind, entry_id) if kind else src.catalogue.find(entry_id)
        if e is None or src.root is None:
            continue
        layouts = src.catalogue.target.get("layouts", ("plain", "hub"))
        held = tuple(r.name for r in e.revisions)
        places.append(
            Place(
                name=str(src.catalogue.target.get("name", src.root)),
                root=str(src.root),
                local=True,
                plain=str(src.root / KIND_DIRS[e.kind] / e.id) if "plain" in layouts else None,
                hub_cache=str(src.root / HUB_DIR) if "hub" in layouts else None,
                revisions=held,
            )
        )
    # offline (a compute node), what the mirrors say is enough: the store is noted, skipped
    remote = next((s for s in resolver.sources(tolerant=True) if s.kind != "mirror"), None)
    notes += [f"not read: {p}" for p in resolver.problems]
    if remote is not None:
        listed = remote.catalogue.entry(found.entry.kind, entry_id)
        known = {p.root for p in places}
        for m in remote.catalogue.mirrors:
            if listed is None or m["name"] not in listed.mirrors or m["root"] in known:
                continue
            layouts = m.get("layouts", ("plain", "hub"))
            root = m["root"].rstrip("/")
            places.append(
                Place(
                    name=m["name"],
                    root=root,
                    local=False,
                    plain=f"{root}/{KIND_DIRS[entry.kind]}/{entry.id}"
                    if "plain" in layouts
                    else None,
                    hub_cache=f"{root}/{HUB_DIR}" if "hub" in layouts else None,
                    revisions_policy=m.get("revisions", "default"),
                )
            )
    by_name: dict[str, tuple[PublishedRevision, list[str]]] = {}
    for src in [*resolver.mirrors(), *([remote] if remote is not None else [])]:
        e = src.catalogue.entry(entry.kind, entry.id)
        for r in e.revisions if e is not None else ():
            by_name.setdefault(r.name, (r, []))[1].append(src.describe())
    pinned = rev_name is not None and rev.name != entry.default_revision
    lines: list[tuple[str, str]] = []
    for p in places:
        holds = (
            rev.name in p.revisions
            if p.revisions is not None
            else (not pinned or p.revisions_policy == "all")
        )
        if not holds:
            continue
        on = f"on {p.name}" + (" (configured here)" if p.local else "")
        if p.plain:
            path = p.plain if not pinned else f"{p.plain.rsplit('/', 1)[0]}/"
            if pinned:
                path += plain_name(entry.id, rev.name)
            lines.append((f"{on}, in place", loader(entry, rev, path)))
        if p.hub_cache and entry.kind == "model":
            call = loader(entry, rev, entry.id)
            if pinned and call.endswith(")"):
                call = call[:-1] + f', revision="{rev.name}")'
            env = f"export HF_HUB_CACHE={shlex.quote(p.hub_cache)} HF_HUB_OFFLINE=1"
            lines.append((f"{on}, by hub id", f"{env}\n{call}"))
    at = f"@{rev.name}" if pinned else ""
    lines.append(("anywhere, a copy in your HF cache", f"nlmr pull {entry.id}{at}"))
    lines.append(("anywhere, a plain directory", f"nlmr pull {entry.id}{at} --to DIR"))
    return EntryInfo(
        entry=entry,
        revision=rev,
        source=found.source.describe(),
        places=tuple(places),
        lines=tuple(lines),
        notes=tuple(notes),
        revisions=tuple((r, tuple(w)) for r, w in (by_name[k] for k in sorted(by_name))),
    )
