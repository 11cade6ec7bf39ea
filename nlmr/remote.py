"""Which store a registry uses: its DVC remote, read the way DVC reads it.

One configuration serves both tools: ``dvc remote add -d storage s3://bucket/prefix``
and ``dvc remote modify storage endpointurl https://…`` in the registry, and
``nlmr add``/``check-remote`` use the same remote. ``.dvc/config.local``
(git-ignored) may hold credentials; they are passed to the store, never shown.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from nlmr import config
from nlmr.errors import RemoteConfigError
from nlmr.store.base import ObjectStore, open_store

_SECTION = re.compile(r"""^['"]?remote\s+"([^"]+)"['"]?$""")
_CREDENTIAL_KEYS = ("access_key_id", "secret_access_key", "session_token", "profile", "region")


@dataclass(frozen=True)
class Remote:
    """A resolved remote.

    Attributes:
        name: the DVC remote's name (None when given as a URL).
        url: ``s3://bucket/prefix`` or an absolute local path.
        endpoint_url: S3 endpoint, if any.
        credentials: from ``.dvc/config.local``; excluded from repr.
    """

    name: str | None
    url: str
    endpoint_url: str | None = None
    credentials: dict[str, str] = field(default_factory=dict, repr=False)

    def open(self, *, jobs: int | None = None) -> ObjectStore:
        """The object store behind this remote."""
        return open_store(
            self.url,
            endpoint_url=self.endpoint_url,
            credentials=self.credentials,
            jobs=config.jobs(jobs),
        )

    def describe(self) -> str:
        """For messages: the URL and endpoint, never credentials."""
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"{self.url}{where}"


def find_dvc_dir(start: Path) -> Path | None:
    """The ``.dvc`` directory of the DVC project containing ``start``, if any."""
    here = start.resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".dvc").is_dir():
            return candidate / ".dvc"
    return None


def _read_dvc_config(dvc_dir: Path) -> tuple[str | None, dict[str, dict[str, str]]]:
    """(default remote name, remotes by name) from .dvc/config and .dvc/config.local."""
    default: str | None = None
    remotes: dict[str, dict[str, str]] = {}
    for name in ("config", "config.local"):
        path = dvc_dir / name
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except configparser.Error as exc:
            raise RemoteConfigError(f"{path}: not a valid DVC config ({exc.message})") from exc
        for section in parser.sections():
            m = _SECTION.match(section.strip())
            if m:
                remotes.setdefault(m.group(1), {}).update(parser[section])
            elif section.strip() == "core" and parser[section].get("remote"):
                default = parser[section]["remote"].strip()
    return default, remotes


def resolve_remote(
    registry: str | os.PathLike[str],
    *,
    url: str | None = None,
    endpoint_url: str | None = None,
    name: str | None = None,
) -> Remote:
    """The remote to use for a registry.

    Order: an explicit ``url`` (``--remote``), else ``NLMR_REMOTE``, else the registry's DVC
    remote (``name`` or the default one).

    Raises:
        RemoteConfigError: nothing configured, or the named remote does not exist.
    """
    url = url or config.remote_url()
    endpoint = endpoint_url or config.endpoint_url()
    if url:
        return Remote(None, _absolute(url, Path.cwd()), endpoint)
    dvc_dir = find_dvc_dir(Path(registry))
    hint = (
        "pass --remote URL, set NLMR_REMOTE, or configure the registry's DVC remote: "
        "`dvc remote add -d storage s3://bucket/prefix`"
    )
    if dvc_dir is None:
        raise RemoteConfigError(f"{registry}: no remote configured (no .dvc/ directory)", hint=hint)
    default, remotes = _read_dvc_config(dvc_dir)
    chosen = name or default
    if not chosen:
        raise RemoteConfigError(f"{dvc_dir}/config: no default remote", hint=hint)
    if chosen not in remotes or not remotes[chosen].get("url"):
        known = ", ".join(sorted(remotes)) or "none"
        raise RemoteConfigError(
            f"{dvc_dir}/config: no remote named {chosen!r} (known: {known})", hint=hint
        )
    section = remotes[chosen]
    credentials = {k: section[k] for k in _CREDENTIAL_KEYS if section.get(k)}
    return Remote(
        chosen,
        _absolute(section["url"], dvc_dir),
        endpoint or section.get("endpointurl"),
        credentials,
    )


def _absolute(url: str, base: Path) -> str:
    """Local paths in DVC configs are relative to the config's directory."""
    if "://" in url and not url.startswith("file://"):
        return url
    path = Path(url.removeprefix("file://")).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())
