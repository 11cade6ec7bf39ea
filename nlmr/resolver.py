"""Where an entry can be had: the nearest mirror that holds it, else the store.

A login node or laptop needs no registry checkout. It knows, from
:func:`nlmr.config.settings` (arguments, environment, ``~/.config/nlmr/config.yaml``):

* mirror roots (``NLMR_MIRRORS``, or the ``NLMR_MIRROR_ROOT`` a mirror's module sets),
  each with the ``catalogue.json`` its sync keeps: looked in first, in order, and read
  only from the local filesystem (a compute node has no network);
* a catalogue URL (``NLMR_CATALOGUE``) and the store (``NLMR_REMOTE``). Either implies
  the other: the store serves its catalogue at ``<remote>/nlmr/catalogue.json``. It is
  fetched only when no mirror has what was asked for.

A registry checkout can stand in for the catalogue (``--registry``): its catalogue is
built in memory and its DVC remote is the store.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nlmr.catalogue import (
    CATALOGUE_FILE,
    STORE_CATALOGUE_KEY,
    Catalogue,
    CatalogueEntry,
    PublishedRevision,
)
from nlmr.config import Settings
from nlmr.errors import (
    CardError,
    NotFoundError,
    ObjectNotFoundError,
    RemoteConfigError,
    StoreError,
    UsageError,
)
from nlmr.layout import HUB_DIR, plain_dir, plain_link

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
SourceKind = Literal["mirror", "catalogue", "registry"]


def parse_ref(ref: str, revision: str | None = None) -> tuple[str, str | None]:
    """``org/name[@revision]`` → (id, revision); ``revision`` overrides the ``@`` part.

    Raises:
        UsageError: not ``org/name``, or two different revisions given.
    """
    entry_id, at, rev = ref.partition("@")
    if not _ID.match(entry_id) or (at and not rev):
        raise UsageError(
            f"{ref!r} is not an entry reference",
            hint="write org/name or org/name@revision (a revision name, tag or full commit)",
        )
    if rev and revision and rev != revision:
        raise UsageError(f"{ref!r} names revision {rev!r} but --revision says {revision!r}")
    return entry_id, (revision or rev or None)


@dataclass(frozen=True)
class Source:
    """One place entries can be found.

    Attributes:
        kind: ``mirror`` (a local synced root), ``catalogue`` (a store's catalogue) or
            ``registry`` (a checkout, read in memory).
        where: the mirror root, the catalogue's URL or the registry's path (for messages).
        catalogue: what it holds.
        root: the mirror root (mirrors only).
        remote: the store to fetch objects from (catalogues and registries).
        endpoint_url: the store's S3 endpoint, if any.
        credentials: from a registry's ``.dvc/config.local``; never shown.
    """

    kind: SourceKind
    where: str
    catalogue: Catalogue
    root: Path | None = None
    remote: str | None = None
    endpoint_url: str | None = None
    credentials: dict[str, str] = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        return f"{self.kind} {self.where}"


@dataclass(frozen=True)
class Located:
    """An entry's revision, and the source that will provide it."""

    entry: CatalogueEntry
    revision: PublishedRevision
    source: Source

    @property
    def ref(self) -> str:
        return f"{self.entry.id}@{self.revision.name}"

    @property
    def is_default(self) -> bool:
        return self.revision.name == self.entry.default_revision

    def layouts(self) -> tuple[str, ...]:
        if self.source.kind != "mirror":
            return ()
        return tuple(self.source.catalogue.target.get("layouts", ("plain", "hub")))

    def plain_path(self, *, pinned: bool = False) -> Path | None:
        """The plain tree to ``from_pretrained`` on the mirror: the entry's default link for
        the default revision (unless ``pinned``), else ``name@revision``."""
        root = self.source.root
        if root is None or "plain" not in self.layouts():
            return None
        if self.is_default and not pinned:
            return plain_link(root, self.entry.kind, self.entry.id)
        return plain_dir(root, self.entry.kind, self.entry.id, self.revision.name)

    def load_path(self, *, pinned: bool = False) -> Path:
        """The directory to load in place on the mirror: the plain tree
        (:meth:`plain_path`), else the revision's snapshot in the hub cache."""
        plain = self.plain_path(pinned=pinned)
        if plain is not None:
            return plain
        assert self.source.root is not None, "only a mirror has paths to load in place"
        from nlmr.layout import hub_repo_dir

        repo = hub_repo_dir(self.source.root, self.entry.kind, self.entry.id)
        return repo / "snapshots" / self.revision.id

    def hub_cache(self) -> Path | None:
        """The mirror's ``HF_HUB_CACHE`` (hub-cache layout), if it has one."""
        if self.source.root is None or "hub" not in self.layouts():
            return None
        return self.source.root / HUB_DIR


def _read_url(url: str, endpoint_url: str | None) -> bytes:
    """A small file at a path, ``http(s)://`` or ``s3://`` URL.

    Raises:
        ObjectNotFoundError: nothing there.
        StoreError: the server refused or could not be reached.
        RemoteConfigError: not a URL nlmr can read.
    """
    if "://" not in url or url.startswith("file://"):
        path = Path(url.removeprefix("file://")).expanduser()
        if path.is_dir():
            path = path / CATALOGUE_FILE
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"{path}: no such catalogue", url=str(path)) from exc
        except OSError as exc:
            raise StoreError(f"{path}: {exc.strerror}", url=str(path)) from exc
    if url.startswith(("http://", "https://")):
        return _http_get(url)
    if not url.startswith("s3://"):
        raise RemoteConfigError(f"{url}: not a catalogue URL (a path, https:// or s3://)")
    from nlmr.store.base import open_store

    base, _, name = url.rpartition("/")
    if not name or base == "s3:/":
        raise RemoteConfigError(f"{url}: not a catalogue URL (s3://bucket/…/catalogue.json)")
    return open_store(base, endpoint_url=endpoint_url).get_bytes(name)


def _http_get(url: str) -> bytes:
    """GET a catalogue the way a browser would: redirects followed (release downloads
    redirect), query strings kept, TLS trust from the system or ``SSL_CERT_FILE``."""
    import http.client
    import urllib.error
    import urllib.request

    from nlmr import __version__
    from nlmr.errors import StoreAccessError, StoreUnavailableError

    try:
        request = urllib.request.Request(url, headers={"User-Agent": f"nlmr/{__version__}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            data: bytes = response.read()
            return data
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise ObjectNotFoundError(f"{url}: no such object", url=url) from exc
        if exc.code in (401, 403):
            raise StoreAccessError(f"{url}: access denied (HTTP {exc.code})", url=url) from exc
        raise StoreUnavailableError(f"{url}: HTTP {exc.code} {exc.reason}", url=url) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        hint = "check the URL and network"
        if type(reason).__name__ == "SSLCertVerificationError":
            hint = "the server's TLS certificate is not trusted: set SSL_CERT_FILE to its CA"
        raise StoreUnavailableError(
            f"{url}: cannot reach it ({reason})", url=url, hint=hint
        ) from exc
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        raise RemoteConfigError(f"{url}: not a valid URL ({exc})") from exc


def _catalogue_and_remote(s: Settings) -> tuple[str, str | None] | None:
    """(catalogue URL, store URL) from the settings: each implies the other."""
    suffix = "/" + STORE_CATALOGUE_KEY
    if s.catalogue:
        remote = s.remote
        bare = s.catalogue.split("?", 1)[0]  # a signed URL's query names no other store
        if remote is None and bare.endswith(suffix):
            remote = bare[: -len(suffix)]
        return s.catalogue, remote
    if s.remote:
        return s.remote.rstrip("/") + suffix, s.remote
    return None


class Resolver:
    """Finds entries in the configured sources, nearest first, loading each only when needed.

    Args:
        settings: from :func:`nlmr.config.settings`.
        registry: a registry checkout to use as the catalogue (with its DVC remote as the
            store) instead of a catalogue URL.
        offline: never fetch a remote catalogue (``nlmr.resolve`` on a compute node).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        registry: str | os.PathLike[str] | None = None,
        offline: bool = False,
    ) -> None:
        self.settings = settings
        self.registry = Path(registry) if registry is not None else None
        self.offline = offline
        self.looked: list[str] = []  # what was searched, for "not found" messages
        self.problems: list[str] = []  # sources that could not be read
        self._loaded: list[Source] | None = None
        self._remote_done = False

    def mirrors(self) -> list[Source]:
        """The configured mirrors that have a catalogue (missing ones are noted, skipped)."""
        if self._loaded is None:
            self._loaded = []
            for root in self.settings.mirrors:
                path = root / CATALOGUE_FILE
                self.looked.append(f"mirror {root}")
                try:
                    raw = path.read_bytes()
                except OSError as exc:
                    self.problems.append(f"mirror {root}: no {CATALOGUE_FILE} ({exc.strerror})")
                    continue
                from nlmr.catalogue import parse_catalogue

                try:
                    cat = parse_catalogue(raw, str(path))
                except CardError as exc:
                    self.problems.append(str(exc))
                    continue
                self._loaded.append(Source("mirror", str(root), cat, root=root))
        return self._loaded

    def remote_source(self) -> Source | None:
        """The store's catalogue (or the registry's), fetched on first use; None when none
        is configured (or ``offline``)."""
        if not self._remote_done:
            self._remote_done = True
            self._remote = None if self.offline else self._load_remote()
        return self._remote

    def _load_remote(self) -> Source | None:
        s = self.settings
        if self.registry is not None:
            from nlmr.remote import resolve_remote
            from nlmr.storecatalogue import build_catalogue

            self.looked.append(f"registry {self.registry}")
            cat, problems = build_catalogue(self.registry)
            self.problems += problems
            try:
                remote = resolve_remote(self.registry, url=s.remote, endpoint_url=s.endpoint_url)
            except RemoteConfigError as exc:
                self.problems.append(str(exc))
                return Source("registry", str(self.registry), cat)
            return Source(
                "registry",
                str(self.registry),
                cat,
                remote=remote.url,
                endpoint_url=remote.endpoint_url,
                credentials=remote.credentials,
            )
        pair = _catalogue_and_remote(s)
        if pair is None:
            return None
        url, store_url = pair
        self.looked.append(f"catalogue {url}")
        from nlmr.catalogue import parse_catalogue

        try:
            raw = _read_url(url, s.endpoint_url)
        except ObjectNotFoundError as exc:
            raise NotFoundError(
                url,
                f"{url}: no catalogue there",
                hint="check the store's URL (--remote, NLMR_REMOTE) or the catalogue's "
                "(--catalogue, NLMR_CATALOGUE); a store's maintainers publish its catalogue "
                "with `nlmr catalogue --upload`",
            ) from exc
        return Source(
            "catalogue",
            url,
            parse_catalogue(raw, url),
            remote=store_url,
            endpoint_url=s.endpoint_url,
        )

    def sources(self, *, tolerant: bool = False) -> Iterator[Source]:
        """Every source, nearest first (the remote one is fetched when reached).

        Args:
            tolerant: a remote catalogue that cannot be fetched or read is noted in
                :attr:`problems` and skipped (listings: what the mirrors hold still shows),
                instead of raising.
        """
        yield from self.mirrors()
        try:
            remote = self.remote_source()
        except (StoreError, CardError, NotFoundError, RemoteConfigError) as exc:
            if not tolerant:
                raise
            self.problems.append(f"{exc}" + (f" ({exc.hint})" if exc.hint else ""))
            remote = None
        if remote is not None:
            yield remote

    def locate(self, ref: str, revision: str | None = None, *, kind: str | None = None) -> Located:
        """The nearest source holding ``ref`` (``org/name[@revision]``).

        ``revision`` (or the ``@`` part) is a revision name, a tag or a full commit; None
        means the entry's default revision in that source.

        Raises:
            UsageError: a malformed reference.
            NotFoundError: no source has the entry, or none has that revision (the message
                lists what was searched, close matches and the revisions that exist).
            StoreError, CardError: a remote catalogue could not be fetched or read.
        """
        entry_id, rev = parse_ref(ref, revision)
        seen: list[CatalogueEntry] = []
        for source in self.sources():
            entry = self._entry(source.catalogue, entry_id, kind)
            if entry is None:
                continue
            seen.append(entry)
            found = _revision(entry, rev)
            if found is not None:
                return Located(entry, found, source)
        raise self._not_found(entry_id, rev, seen)

    @staticmethod
    def _entry(cat: Catalogue, entry_id: str, kind: str | None) -> CatalogueEntry | None:
        return cat.entry(kind, entry_id) if kind else cat.find(entry_id)

    def _not_found(
        self, entry_id: str, rev: str | None, seen: list[CatalogueEntry]
    ) -> NotFoundError:
        where = "; ".join(self.looked) or "nowhere"
        if not self.looked:
            return NotFoundError(
                entry_id,
                f"{entry_id}: no mirror or catalogue is configured",
                hint="set NLMR_MIRRORS to a mirror root or NLMR_REMOTE/NLMR_CATALOGUE to the "
                "store (or put them in ~/.config/nlmr/config.yaml); see `nlmr pull --help`",
            )
        if seen:
            names = sorted({r.name for e in seen for r in e.revisions})
            what = f"no revision {rev!r}" if rev else "no default revision to pull"
            return NotFoundError(
                f"{entry_id}@{rev}",
                f"{entry_id}: {what} (looked in: {where})",
                hint=f"revisions: {', '.join(names) or 'none'}",
            )
        ids = sorted({e.id for s in self._known() for e in s.catalogue.entries.values()})
        close = difflib.get_close_matches(entry_id, ids, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "list entries with `nlmr ls`"
        problems = f"; {'; '.join(self.problems)}" if self.problems else ""
        return NotFoundError(
            entry_id, f"{entry_id}: not found (looked in: {where}){problems}", hint=hint
        )

    def _known(self) -> list[Source]:
        out = list(self.mirrors())
        if self._remote_done and self._remote is not None:
            out.append(self._remote)
        return out


def _revision(entry: CatalogueEntry, rev: str | None) -> PublishedRevision | None:
    if rev is None:
        return entry.revision(entry.default_revision) if entry.default_revision else None
    return entry.revision(rev) or next((r for r in entry.revisions if r.id == rev), None)


def resolve(
    entry_id: str,
    revision: str | None = None,
    *,
    kind: str | None = None,
    mirrors: list[str | os.PathLike[str]] | None = None,
) -> Path:
    """The path of an entry inside the nearest configured mirror, to load in place.

    For ``from_pretrained(nlmr.resolve("org/name"))`` or ``load_dataset(...)`` on a compute
    node: only local mirrors are read (``NLMR_MIRRORS``, ``NLMR_MIRROR_ROOT`` or the
    configuration file), nothing is fetched.

    Args:
        entry_id: ``org/name`` (or ``org/name@revision``).
        revision: a revision name, tag or full commit; None: the default revision.
        kind: ``model`` or ``dataset`` when an id names both.
        mirrors: mirror roots to use instead of the configured ones.

    Returns:
        The plain tree's directory: the entry's default link when no revision is named
        (it follows the mirror's default), ``name@revision`` when one is (it stays put);
        on a mirror with only the hub-cache layout, the revision's snapshot directory.

    Raises:
        NotFoundError: no configured mirror holds it (the hint names ``nlmr pull``).
    """
    from nlmr import config

    resolver = Resolver(config.settings(mirrors=mirrors), offline=True)
    try:
        found = resolver.locate(entry_id, revision, kind=kind)
    except NotFoundError as exc:
        raise NotFoundError(
            exc.ref,
            exc.message,
            hint=f"{exc.hint}; or fetch it with `nlmr pull {entry_id}`"
            if exc.hint
            else f"fetch it with `nlmr pull {entry_id}`",
        ) from None
    pinned = revision is not None or "@" in entry_id
    return found.load_path(pinned=pinned)
