"""Every environment variable nlmr reads, in one place.

Values are read when a function is called, never at import time, so tests and
long-running processes see the environment as it is now.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The environment variables nlmr understands, with what they mean (docs are generated from this).
ENVIRONMENT: dict[str, str] = {
    "NLMR_DEBUG": "Show full tracebacks instead of one-line error messages (1/true/yes).",
    "NLMR_REGISTRY": "Path of the registry checkout (the directory holding models/ and datasets/).",
    "NLMR_REMOTE": "Store URL to use instead of the registry's DVC remote "
    "(s3://bucket/prefix or a path).",
    "NLMR_ENDPOINT_URL": "S3 endpoint for NLMR_REMOTE (also read: the DVC remote's endpointurl, "
    "then AWS_ENDPOINT_URL).",
    "NLMR_JOBS": "Concurrent transfers (default 8).",
    "NLMR_MIRRORS": "Local mirror roots that `nlmr pull`, `info`, `ls` and `nlmr.resolve` look in "
    "first, separated by ':' (default: NLMR_MIRROR_ROOT).",
    "NLMR_MIRROR_ROOT": "The mirror root; set by a mirror's nlmr-env.sh and Lmod module, read "
    "when NLMR_MIRRORS is unset.",
    "NLMR_CATALOGUE": "Where to resolve entries that are on no mirror: a catalogue.json as a "
    "path, https:// or s3:// URL (default: the store's nlmr/catalogue.json).",
    "NLMR_CONFIG": "The user configuration file (default $XDG_CONFIG_HOME/nlmr/config.yaml, "
    "i.e. ~/.config/nlmr/config.yaml).",
    "XDG_CONFIG_HOME": "Read to find the default configuration file.",
    "HF_HUB_CACHE": "The Hugging Face cache `nlmr pull` writes to by default (else "
    "HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub: the cache huggingface_hub reads).",
    "HF_HOME": "Read when HF_HUB_CACHE is unset (default $XDG_CACHE_HOME/huggingface).",
    "HUGGINGFACE_HUB_CACHE": "The legacy name of HF_HUB_CACHE, read when it is unset.",
    "XDG_CACHE_HOME": "Read when HF_HOME is unset, as huggingface_hub does (default ~/.cache).",
}

#: AWS's own variables, which nlmr reads exactly as botocore does (to skip importing botocore
#: when the keys are in the environment); botocore reads the rest of its settings itself.
AWS_ENVIRONMENT: tuple[str, ...] = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
)


def _env(name: str) -> str | None:
    if name not in ENVIRONMENT:  # a typo here would silently read nothing
        raise KeyError(f"undocumented environment variable {name}")
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def aws_env() -> dict[str, str]:
    """The :data:`AWS_ENVIRONMENT` variables that are set (and not empty)."""
    return {name: v for name in AWS_ENVIRONMENT if (v := os.environ.get(name, ""))}


def env_flag(name: str) -> bool:
    """True when the variable is set to 1/true/yes/on (any case)."""
    value = _env(name)
    return value is not None and value.strip().lower() in {"1", "true", "yes", "on"}


def debug() -> bool:
    """Whether ``NLMR_DEBUG`` asks for tracebacks."""
    return env_flag("NLMR_DEBUG")


def registry_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The registry to use: the explicit argument, else ``NLMR_REGISTRY``, else ``./registry``."""
    if explicit is not None:
        return Path(explicit)
    value = _env("NLMR_REGISTRY")
    return Path(value) if value else Path("registry")


def remote_url() -> str | None:
    """``NLMR_REMOTE``, when set."""
    return _env("NLMR_REMOTE")


def endpoint_url() -> str | None:
    """``NLMR_ENDPOINT_URL``, when set."""
    return _env("NLMR_ENDPOINT_URL")


def jobs(explicit: int | None = None) -> int:
    """Concurrent transfers: the explicit value, else ``NLMR_JOBS``, else 8.

    Raises:
        ValueError: ``NLMR_JOBS`` is not a positive integer.
    """
    if explicit is not None:
        return explicit
    value = _env("NLMR_JOBS")
    if value is None:
        return 8
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"NLMR_JOBS must be a positive integer, not {value!r}")
    return int(value)


def mirror_roots() -> list[Path] | None:
    """``NLMR_MIRRORS`` (':'-separated), else ``NLMR_MIRROR_ROOT``; None when neither is set."""
    value = _env("NLMR_MIRRORS")
    if value is not None:
        return [Path(p).expanduser() for p in value.split(os.pathsep) if p]
    root = _env("NLMR_MIRROR_ROOT")
    return [Path(root)] if root else None


def catalogue_url() -> str | None:
    """``NLMR_CATALOGUE``, when set."""
    return _env("NLMR_CATALOGUE")


def config_file() -> Path:
    """``NLMR_CONFIG``, else ``$XDG_CONFIG_HOME/nlmr/config.yaml`` (``~/.config/…``)."""
    explicit = _env("NLMR_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = _env("XDG_CONFIG_HOME")
    return (Path(base) if base else Path.home() / ".config") / "nlmr" / "config.yaml"


def hf_hub_cache() -> Path:
    """The user's Hugging Face hub cache, found as huggingface_hub finds it (its
    ``constants.py``): ``HF_HUB_CACHE``, else the legacy ``HUGGINGFACE_HUB_CACHE``, else
    ``$HF_HOME/hub`` with ``HF_HOME`` defaulting to ``$XDG_CACHE_HOME/huggingface`` (and that
    to ``~/.cache``); ``~`` and ``$VARS`` expanded."""

    def expand(value: str) -> Path:
        return Path(os.path.expandvars(os.path.expanduser(value)))

    cache = _env("HF_HUB_CACHE") or _env("HUGGINGFACE_HUB_CACHE")
    if cache:
        return expand(cache)
    home = _env("HF_HOME")
    if not home:
        home = os.path.join(_env("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return expand(home) / "hub"


#: Keys of the user configuration file, with what they mean.
CONFIG_KEYS: dict[str, str] = {
    "mirrors": "list of local mirror roots to look in first (as NLMR_MIRRORS)",
    "catalogue": "catalogue.json to resolve entries from: path, https:// or s3:// URL",
    "remote": "the store: s3://bucket/prefix, https://host/bucket/prefix or a path",
    "endpoint_url": "S3 endpoint of the store (for s3:// URLs outside AWS)",
    "jobs": "concurrent transfers",
}


@dataclass(frozen=True)
class Settings:
    """Where ``pull``, ``info``, ``ls`` and ``resolve`` look, after merging, in order of
    precedence: explicit arguments, the environment, the configuration file.

    Attributes:
        mirrors: local mirror roots, nearest first.
        catalogue: a catalogue URL or path; None: the store's ``nlmr/catalogue.json``.
        remote: the store's URL (objects in DVC's layout).
        endpoint_url: S3 endpoint for an ``s3://`` remote.
        jobs: concurrent transfers.
        origin: the configuration file read, if any (for messages).
    """

    mirrors: tuple[Path, ...] = ()
    catalogue: str | None = None
    remote: str | None = None
    endpoint_url: str | None = None
    jobs: int = 8
    origin: Path | None = None


def read_config_file(path: Path) -> dict[str, Any]:
    """The user configuration file's values; an absent file is empty.

    Raises:
        ConfigError: not YAML, an unknown key, or a value of the wrong type (names the line).
    """
    if not path.is_file():
        return {}
    from nlmr.errors import CardError, ConfigError
    from nlmr.yamlio import load_path

    try:
        doc = load_path(path)
    except CardError as exc:
        raise ConfigError(exc.message, hint="fix or remove the configuration file") from exc
    data = doc.data if doc.data is not None else {}

    def fail(key: str | None, message: str) -> ConfigError:
        where = str(path)
        if key is not None:
            where += f":{doc.locate((key,), key=True)[0]}"
        keys = ", ".join(CONFIG_KEYS)
        return ConfigError(f"{where}: {message}", hint=f"the keys are: {keys}")

    if not isinstance(data, Mapping):
        raise fail(None, "expected a mapping of settings")
    for key, value in data.items():
        if key not in CONFIG_KEYS:
            raise fail(key, f"unknown setting {key!r}")
        if key == "mirrors":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise fail(key, "mirrors must be a list of paths")
        elif key == "jobs":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise fail(key, "jobs must be a positive integer")
        elif not isinstance(value, str) or not value:
            raise fail(key, f"{key} must be a string")
    return dict(data)


def settings(
    *,
    mirrors: list[str | os.PathLike[str]] | None = None,
    catalogue: str | None = None,
    remote: str | None = None,
    endpoint_url: str | None = None,
    jobs: int | None = None,
    use_file: bool = True,
) -> Settings:
    """The merged :class:`Settings`: explicit arguments, else the environment, else the
    configuration file (:func:`config_file`).

    Raises:
        ConfigError: the configuration file or ``NLMR_JOBS`` is malformed.
    """
    from nlmr.errors import ConfigError

    path = config_file()
    file = read_config_file(path) if use_file else {}
    env_mirrors = mirror_roots()
    if mirrors is not None:
        roots = [Path(m).expanduser() for m in mirrors]
    elif env_mirrors is not None:
        roots = env_mirrors
    else:
        # relative to the configuration file, wherever the command runs
        roots = [path.parent / Path(m).expanduser() for m in file.get("mirrors", [])]
    try:
        n = jobs if jobs is not None else config_jobs(file.get("jobs"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    # The store and its catalogue come as a pair from the first level (arguments, then the
    # environment, then the file) that names either, so `--remote` is never paired with a
    # catalogue from the file; a lone catalogue that does not imply its store (…/nlmr/
    # catalogue.json) takes the store from a lower level.
    # The endpoint belongs to its store: it comes from the store's level or a higher one
    # (NLMR_REMOTE=s3://aws-bucket must not inherit the file's endpoint_url of another store).
    levels = [
        (catalogue, remote, endpoint_url),
        (catalogue_url(), remote_url(), _env("NLMR_ENDPOINT_URL")),
        (file.get("catalogue"), file.get("remote"), file.get("endpoint_url")),
    ]
    first = next((i for i, (c, r, _) in enumerate(levels) if c or r), len(levels))
    cat, store = levels[first][:2] if first < len(levels) else (None, None)
    if cat and not store and not cat.split("?", 1)[0].endswith("/nlmr/catalogue.json"):
        first = next((i for i, (_, r, _) in enumerate(levels) if r), first)
        store = levels[first][1] if first < len(levels) else None
    endpoint = next((e for _, _, e in levels[: first + 1] if e), None)
    base = Path.cwd()
    return Settings(
        mirrors=tuple(r if r.is_absolute() else base / r for r in roots),
        catalogue=cat,
        remote=store,
        endpoint_url=endpoint,
        jobs=n,
        origin=path if file else None,
    )


def config_jobs(from_file: int | None) -> int:
    """``NLMR_JOBS``, else the file's value, else 8."""
    if _env("NLMR_JOBS") is None and from_file is not None:
        return from_file
    return jobs()
