"""The catalogue a store serves: every stored revision of the registry, with its manifest.

``nlmr sync`` writes a catalogue of what one mirror holds; this one describes the store
itself, so a laptop or login node with only ``pip install nlmr`` and the store's URL can
resolve ``org/name@revision`` and verify every file, with no registry checkout. It lives
at :data:`CATALOGUE_KEY` beside DVC's ``files/md5/…`` objects (DVC ignores other keys),
and lists the registry's mirror targets so ``nlmr info`` can show where each entry is
on each cluster. Same format as a mirror's (``schemas/catalogue.schema.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nlmr import __version__
from nlmr.catalogue import STORE_CATALOGUE_KEY, Catalogue, CatalogueEntry, PublishedRevision
from nlmr.errors import CardError
from nlmr.manifest import Manifest
from nlmr.registry import Registry
from nlmr.store.base import ObjectStore
from nlmr.target import TARGET_SUFFIX, Target, default_target, load_target

#: Where a store keeps its catalogue (relative to the remote's URL).
CATALOGUE_KEY = STORE_CATALOGUE_KEY


def build_catalogue(
    registry: str | os.PathLike[str],
    *,
    remote_url: str = "",
    targets_dir: str | os.PathLike[str] | None = None,
    now: str | None = None,
) -> tuple[Catalogue, list[str]]:
    """A catalogue of every stored, non-yanked revision in ``registry``.

    Args:
        registry: the registry checkout.
        remote_url: the store's URL, recorded as the catalogue's root.
        targets_dir: the mirror targets (``sync/*.yaml``) to list; default: ``sync/``
            beside the registry, if it exists.
        now: the ``updated`` stamp (default: the current time).

    Returns:
        The catalogue, and problems (cards or targets that could not be read; skipped).

    Raises:
        RegistryNotFoundError: ``registry`` is not a registry.
    """
    from nlmr.sync.plan import iso, now_utc
    from nlmr.sync.view import read_registry

    root = Path(registry)
    view = read_registry(Registry(root), default_target(root), None, write_cache=False)
    problems = list(view.problems)
    targets: list[Target] = []
    tdir = Path(targets_dir) if targets_dir is not None else root.absolute().parent / "sync"
    for path in sorted(tdir.glob(f"*{TARGET_SUFFIX}")) if tdir.is_dir() else []:
        try:
            targets.append(load_target(path))
        except CardError as exc:
            problems.append(f"{exc} (target skipped)")
    entries: dict[str, CatalogueEntry] = {}
    for w in view.entries:
        revisions = []
        for rev in w.revisions:
            if rev.manifest is None or rev.yanked:
                continue
            manifest = Manifest.from_dict(json.loads(Path(rev.manifest).read_bytes()))
            revisions.append(
                PublishedRevision(
                    name=rev.name,
                    id=rev.id,
                    date=rev.date,
                    published=rev.date or "",
                    manifest_sha256=rev.manifest_sha256 or "",
                    files=tuple(manifest.files),
                )
            )
        if not revisions:
            continue
        default = w.default.name if w.default else None
        if default not in {r.name for r in revisions}:
            default = None
        entry = w.catalogue_entry(
            default,
            tuple(sorted(revisions, key=lambda r: r.name)),
            tuple(t.name for t in targets if t.select.selects(w.kind, w.id, w.tags)),
        )
        entries[entry.key] = entry
    catalogue = Catalogue(
        target={"name": "store", "root": remote_url, "backend": "store", "layouts": []},
        updated=now or iso(now_utc()),
        generator=f"nlmr {__version__}",
        entries=entries,
        mirrors=tuple(
            {
                "name": t.name,
                "root": str(t.root),
                "description": t.description,
                "layouts": list(t.layouts),
                "revisions": t.select.revisions,
            }
            for t in targets
        ),
    )
    return catalogue, problems


def upload_catalogue(store: ObjectStore, catalogue: Catalogue) -> str:
    """Put the catalogue at :data:`CATALOGUE_KEY` in ``store``; returns its URL."""
    store.put_bytes(CATALOGUE_KEY, catalogue.to_json())
    return f"{store.url.rstrip('/')}/{CATALOGUE_KEY}"
