"""The one exception hierarchy of nlmr.

Every error a user can cause is an :class:`NlmrError`. Errors carry data (the
file, the line, the entry, the expected and actual values) so the CLI can
render them in one place (``nlmr.cli._errors``) and programs can inspect them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nlmr.lock import LockOwner


class NlmrError(Exception):
    """Base class of every error nlmr raises on purpose.

    Attributes:
        hint: an optional next step for the user ("run `nlmr validate …`").
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


def format_pointer(pointer: Sequence[str | int]) -> str:
    """Render a JSON-pointer-like tuple as ``revisions[0].id``; ``<root>`` when empty."""
    out = ""
    for part in pointer:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


class CardError(NlmrError, ValueError):
    """A card, manifest or pointer file is malformed or violates a rule.

    Attributes:
        path: the file, as given.
        line, col: 1-based position of the offending YAML/JSON node (1, 1 when unknown).
        pointer: the field, as a tuple of keys and list indices.
    """

    def __init__(
        self,
        path: str,
        message: str,
        *,
        line: int = 1,
        col: int = 1,
        pointer: Sequence[str | int] = (),
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.col = col
        self.pointer = tuple(pointer)
        self.problem = message
        super().__init__(
            f"{path}:{line}:{col}: {format_pointer(self.pointer)}: {message}", hint=hint
        )


class RegistryNotFoundError(NlmrError, FileNotFoundError):
    """No registry directory where one was expected."""


class NotFoundError(NlmrError, LookupError):
    """An entry or revision reference that does not resolve.

    Attributes:
        ref: what the user asked for, e.g. ``ltg/norbert3-base@v1.0``.
    """

    def __init__(self, ref: str, message: str | None = None, *, hint: str | None = None) -> None:
        self.ref = ref
        super().__init__(message or f"{ref}: no such entry", hint=hint)


class OutputExistsError(NlmrError, FileExistsError):
    """Refusing to overwrite an existing file without ``--force``."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} already exists", hint="pass --force to replace it")


class IntegrityError(NlmrError):
    """Bytes do not match what a manifest or pointer promises.

    Attributes:
        path: the file (relative path inside the revision) or object key.
        expected, actual: the two digests or sizes that disagree.
    """

    def __init__(self, path: str, expected: str, actual: str, *, what: str = "sha256") -> None:
        self.path = path
        self.expected = expected
        self.actual = actual
        super().__init__(f"{path}: {what} mismatch: expected {expected}, got {actual}")


class RemoteConfigError(NlmrError):
    """No usable remote: none configured, or the configuration is malformed."""


class StoreError(NlmrError):
    """An object store operation failed.

    Attributes:
        url: the store (never with credentials).
        key: the object, when the error concerns one.
    """

    def __init__(
        self, message: str, *, url: str = "", key: str | None = None, hint: str | None = None
    ) -> None:
        self.url = url
        self.key = key
        super().__init__(message, hint=hint)


class ObjectNotFoundError(StoreError, FileNotFoundError):
    """The object (or bucket) does not exist."""


class StoreAccessError(StoreError, PermissionError):
    """The store refused: missing or wrong credentials, or no permission."""


class StoreUnavailableError(StoreError, ConnectionError):
    """The store cannot be reached or failed transiently; retrying may help."""


class ConfigError(NlmrError, ValueError):
    """The user's configuration file (or a setting in the environment) is not usable."""


class PullError(NlmrError):
    """Some files of a pull failed; the others are in place and partial files are kept.

    Attributes:
        failures: (file, message) for each file that failed.
    """

    def __init__(
        self, message: str, failures: Sequence[tuple[str, str]], *, hint: str | None = None
    ) -> None:
        self.failures = list(failures)
        super().__init__(message, hint=hint)


class UsageError(NlmrError, ValueError):
    """An argument the user gave is not acceptable (the CLI exits with 2)."""


class LockHeldError(NlmrError):
    """Another process holds the lock (``nlmr sync``'s one-writer lock of a mirror).

    Attributes:
        path: the lock directory.
        owner: its owner record, None when the directory has none (yet).
    """

    def __init__(
        self,
        path: str,
        message: str,
        *,
        owner: LockOwner | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.owner = owner
        super().__init__(message, hint=hint)


class StaleLockError(LockHeldError):
    """The lock's owner stopped heartbeating where nlmr cannot check it (another host).

    Breaking such a lock is the operator's decision (``--break-lock``): a stalled
    node looks the same as a dead one.
    """
