"""Every environment variable nlmr reads, in one place.

Values are read when a function is called, never at import time, so tests and
long-running processes see the environment as it is now.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The environment variables nlmr understands, with what they mean (docs are generated from this).
ENVIRONMENT: dict[str, str] = {
    "NLMR_DEBUG": "Show full tracebacks instead of one-line error messages (1/true/yes).",
    "NLMR_REGISTRY": "Path of the registry checkout (the directory holding models/ and datasets/).",
    "NLMR_REMOTE": "Store URL to use instead of the registry's DVC remote "
    "(s3://bucket/prefix or a path).",
    "NLMR_ENDPOINT_URL": "S3 endpoint for NLMR_REMOTE (also read: the DVC remote's endpointurl, "
    "then AWS_ENDPOINT_URL).",
    "NLMR_JOBS": "Concurrent transfers (default 8).",
}


def _env(name: str) -> str | None:
    if name not in ENVIRONMENT:  # a typo here would silently read nothing
        raise KeyError(f"undocumented environment variable {name}")
    value = os.environ.get(name)
    return value if value not in (None, "") else None


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
