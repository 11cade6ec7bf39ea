"""Mirror targets: what ``sync/<name>.yaml`` says, parsed into values.

A target names a mirror root, the backend that writes it, the layouts, which
entries, revisions and files it holds, the modes of what is published, and the
users' environment. ``nlmr sync --root DIR`` uses :func:`default_target`: every
entry's default revision, both layouts, plain POSIX.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nlmr.errors import CardError, NotFoundError

Backend = Literal["posix", "lustre", "cvmfs"]
Layout = Literal["plain", "hub"]

TARGET_SUFFIX = ".yaml"
DEFAULT_GRACE = 7 * 24 * 3600

_UNITS = {
    "B": 1,
    "K": 1024,
    "KiB": 1024,
    "M": 1024**2,
    "MiB": 1024**2,
    "G": 1024**3,
    "GiB": 1024**3,
    "T": 1024**4,
    "TiB": 1024**4,
}
_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?) ?(B|KiB|MiB|GiB|TiB|K|M|G|T)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(value: int | str) -> int:
    """Bytes from ``1048576`` or ``"1MiB"`` (binary units; the schema checked the form)."""
    if isinstance(value, int):
        return value
    m = _SIZE.match(value.strip())
    if not m:
        raise ValueError(f"not a size: {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_duration(value: int | str) -> int:
    """Seconds from ``0``, ``"30m"``, ``"12h"`` or ``"7d"``."""
    if isinstance(value, int):
        return value
    if value.isdigit():
        return int(value)
    return int(value[:-1]) * _SECONDS[value[-1]]


@dataclass(frozen=True)
class Selection:
    """Which entries and revisions a target holds."""

    kinds: tuple[str, ...] = ("model", "dataset")
    ids: tuple[str, ...] = ()
    orgs: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    exclude_ids: tuple[str, ...] = ()
    revisions: Literal["default", "all"] = "default"

    def selects(self, kind: str, entry_id: str, tags: Sequence[str]) -> bool:
        """Whether an entry belongs on the target (its revisions are chosen separately)."""
        if kind not in self.kinds:
            return False
        if self.ids and not any(fnmatch.fnmatchcase(entry_id, p) for p in self.ids):
            return False
        if self.orgs and entry_id.split("/", 1)[0] not in self.orgs:
            return False
        if self.tags and not set(self.tags) & set(tags):
            return False
        return not any(fnmatch.fnmatchcase(entry_id, p) for p in self.exclude_ids)


@dataclass(frozen=True)
class FileFilter:
    """Which files of a revision are written; ``*`` matches across ``/``."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def keeps(self, path: str) -> bool:
        name = path.rsplit("/", 1)[-1]

        def match(pattern: str) -> bool:
            # a pattern without '/' also matches the file name alone (`*.bin` anywhere)
            return fnmatch.fnmatchcase(path, pattern) or (
                "/" not in pattern and fnmatch.fnmatchcase(name, pattern)
            )

        if self.include and not any(match(p) for p in self.include):
            return False
        return not any(match(p) for p in self.exclude)

    @property
    def active(self) -> bool:
        return bool(self.include or self.exclude)


@dataclass(frozen=True)
class StripeRule:
    """One Lustre striping rule: files up to ``max_size`` get ``count`` stripes of ``size``."""

    count: int
    max_size: int | None = None
    size: int | None = None


@dataclass(frozen=True)
class CvmfsSettings:
    repository: str
    mode: Literal["transaction", "ingest"] = "transaction"
    gateway: bool = False
    staging: str | None = None
    file_size_limit_mb: int = 1024
    server_command: str = "cvmfs_server"


@dataclass(frozen=True)
class EnvSettings:
    user_dir: str = "${XDG_CACHE_HOME:-$HOME/.cache}/nlmr-hf"
    datasets_cache: str | None = None
    modules_cache: str | None = None


@dataclass(frozen=True)
class Target:
    """A parsed ``sync/<name>.yaml`` (or the default target).

    Attributes:
        path: the file it came from (None for the default target).
    """

    name: str
    root: Path
    backend: Backend = "posix"
    layouts: tuple[Layout, ...] = ("plain", "hub")
    description: str = ""
    select: Selection = field(default_factory=Selection)
    files: FileFilter = field(default_factory=FileFilter)
    group: str | int | None = None
    file_mode: int = 0o444
    dir_mode: int = 0o555
    stripes: tuple[StripeRule, ...] = ()
    cvmfs: CvmfsSettings | None = None
    grace: int = DEFAULT_GRACE
    env: EnvSettings = field(default_factory=EnvSettings)
    registry: Path | None = None
    remote: str | None = None
    endpoint_url: str | None = None
    path: Path | None = None

    def with_root(self, root: Path) -> Target:
        """The same target writing elsewhere (``--root``); a cvmfs target keeps its backend."""
        from dataclasses import replace

        return replace(self, root=root)

    def to_dict(self) -> dict[str, Any]:
        """A summary for reports and the catalogue."""
        return {
            "name": self.name,
            "root": str(self.root),
            "backend": self.backend,
            "layouts": list(self.layouts),
            "revisions": self.select.revisions,
        }


def default_target(root: str | os.PathLike[str]) -> Target:
    """The embedded default: every entry's default revision, both layouts, POSIX, at ``root``."""
    return Target(name="default", root=Path(root).absolute(), description="default target")


def find_target(ref: str, targets_dir: str | os.PathLike[str] | None = None) -> Path:
    """The file of target ``ref``: a path to a YAML file, or a name looked up in ``targets_dir``
    (default ``./sync``).

    Raises:
        NotFoundError: no such target.
    """
    direct = Path(ref)
    if ref.endswith((".yaml", ".yml")) or os.sep in ref:
        if direct.is_file():
            return direct
        raise NotFoundError(ref, f"{ref}: no such target file")
    base = Path(targets_dir) if targets_dir is not None else Path("sync")
    candidate = base / f"{ref}{TARGET_SUFFIX}"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in base.glob(f"*{TARGET_SUFFIX}")) if base.is_dir() else []
    hint = (
        f"targets in {base}: {', '.join(known)}"
        if known
        else "pass a target file, --targets DIR, or --root DIR for the default target"
    )
    raise NotFoundError(ref, f"{ref}: no target {candidate}", hint=hint)


def load_target(path: str | os.PathLike[str]) -> Target:
    """Parse and check a target file.

    Raises:
        CardError: the file is not valid YAML or breaks the schema (with line and field).
    """
    from nlmr import schemas
    from nlmr.yamlio import load_path

    p = Path(path)
    display = str(path)
    doc = load_path(p, display=display)
    problems = schemas.check("sync-target", doc.data)
    if problems:
        from nlmr.errors import format_pointer

        lines = []
        for problem in problems:
            line, col = doc.locate(problem.pointer, key=problem.at_key)
            lines.append((line, col, problem))
        lines.sort(key=lambda t: (t[0], t[1]))
        line, col, first = lines[0]
        rest = [
            f"{display}:{ln}:{c}: {format_pointer(p.pointer)}: {p.message}"
            for ln, c, p in lines[1:]
        ]
        raise CardError(
            display,
            first.message,
            line=line,
            col=col,
            pointer=first.pointer,
            hint="\n".join(rest) if rest else None,
        )
    data: Mapping[str, Any] = doc.data
    if data.get("backend") == "cvmfs" and "cvmfs" not in data:
        line, col = doc.locate(("backend",))
        raise CardError(
            display,
            "backend cvmfs needs a `cvmfs:` section with the repository",
            line=line,
            col=col,
            pointer=("backend",),
        )
    if p.stem != data["name"]:
        line, col = doc.locate(("name",))
        raise CardError(
            display,
            f"name {data['name']!r} differs from the file name {p.name!r}",
            line=line,
            col=col,
            pointer=("name",),
            hint=f"rename the file to {data['name']}{TARGET_SUFFIX} or change the name",
        )
    target = _target_from_dict(data, p)
    from nlmr.envfiles import user_env

    try:
        user_env(target)  # the env values must translate to both shell and Lua
    except ValueError as exc:
        line, col = doc.locate(("env",))
        raise CardError(display, str(exc), line=line, col=col, pointer=("env",)) from exc
    return target


def _target_from_dict(data: Mapping[str, Any], path: Path) -> Target:
    sel = data.get("select", {})
    files = data.get("files", {})
    perms = data.get("permissions", {})
    cv = data.get("cvmfs")
    env = data.get("env", {})
    source = data.get("source", {})
    registry = source.get("registry")
    return Target(
        name=data["name"],
        root=Path(data["root"]),
        backend=data.get("backend", "posix"),
        layouts=tuple(data.get("layouts", ("plain", "hub"))),
        description=data.get("description", ""),
        select=Selection(
            kinds=tuple(sel.get("kinds", ("model", "dataset"))),
            ids=tuple(sel.get("ids", ())),
            orgs=tuple(sel.get("orgs", ())),
            tags=tuple(sel.get("tags", ())),
            exclude_ids=tuple(sel.get("exclude_ids", ())),
            revisions=sel.get("revisions", "default"),
        ),
        files=FileFilter(tuple(files.get("include", ())), tuple(files.get("exclude", ()))),
        group=perms.get("group"),
        file_mode=int(perms.get("file_mode", "0444"), 8),
        dir_mode=int(perms.get("dir_mode", "0555"), 8),
        stripes=tuple(
            StripeRule(
                count=r["count"],
                max_size=parse_size(r["max_size"]) if "max_size" in r else None,
                size=parse_size(r["size"]) if "size" in r else None,
            )
            for r in data.get("lustre", {}).get("stripes", ())
        ),
        cvmfs=CvmfsSettings(
            repository=cv["repository"],
            mode=cv.get("mode", "transaction"),
            gateway=bool(cv.get("gateway", False)),
            staging=cv.get("staging"),
            file_size_limit_mb=int(cv.get("file_size_limit_mb", 1024)),
            server_command=cv.get("server_command", "cvmfs_server"),
        )
        if cv
        else None,
        grace=parse_duration(data.get("gc", {}).get("grace", DEFAULT_GRACE)),
        env=EnvSettings(
            user_dir=env.get("user_dir", EnvSettings.user_dir),
            datasets_cache=env.get("datasets_cache"),
            modules_cache=env.get("modules_cache"),
        ),
        registry=(path.parent / registry).resolve() if registry else None,
        remote=source.get("remote"),
        endpoint_url=source.get("endpoint_url"),
        path=path,
    )
