"""nlmr: the Nordic Language Model Repository.

The package is a typed library with a thin click CLI on top (``nlmr.cli``).
Importing ``nlmr`` is cheap: heavy dependencies load inside the functions that
need them, so ``nlmr --help`` stays instant on a login node.

Two functions are for everyone's scripts::

    import nlmr
    from transformers import AutoModel

    AutoModel.from_pretrained(nlmr.resolve("ltg/norbert3-base"))  # on a mirror, in place
    AutoModel.from_pretrained(nlmr.pull("ltg/norbert3-base", to="norbert3"))  # a copy
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__version__ = "0.1.0"

__all__ = ["__version__", "pull", "resolve"]


def pull(
    ref: str,
    revision: str | None = None,
    *,
    to: str | os.PathLike[str] | None = None,
    hf_cache: str | os.PathLike[str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    kind: str | None = None,
    jobs: int | None = None,
    progress: bool | None = False,
) -> Path:
    """Fetch an entry's revision, verified, and return the local path to load.

    Looks in the configured mirrors first (``NLMR_MIRRORS``), then the store
    (``NLMR_REMOTE`` / ``NLMR_CATALOGUE``, or ``~/.config/nlmr/config.yaml``). Resumes an
    interrupted pull; does nothing when everything is already there.

    Args:
        ref: ``org/name`` or ``org/name@revision`` (a revision name, tag or full commit).
        revision: the revision, instead of ``@…``; None: the default revision.
        to: a plain directory to fill; default: the Hugging Face cache (``HF_HUB_CACHE``).
        hf_cache: a Hugging Face cache directory other than the default one.
        include, exclude: glob patterns on file paths.
        kind: ``model`` or ``dataset`` when an id names both.
        jobs: concurrent transfers.
        progress: show a progress bar on standard error (None: when it is a terminal).

    Returns:
        ``to``, or the snapshot directory in the Hugging Face cache; either loads with
        ``from_pretrained(path)`` (and ``from_pretrained("org/name")`` with
        ``HF_HUB_OFFLINE=1`` after a pull into the cache).

    Raises:
        nlmr.errors.NotFoundError: no source has it.
        nlmr.errors.PullError: some files failed (named in ``failures``); the rest are in
            place and partial files are kept, so calling again resumes.
    """
    from nlmr.errors import PullError
    from nlmr.puller import pull as _pull

    report = _pull(
        ref,
        revision,
        to=to,
        hf_cache=hf_cache,
        include=include,
        exclude=exclude,
        kind=kind,
        jobs=jobs,
        progress=progress,
    )
    if report.failed:
        first = report.failed[0]
        raise PullError(
            f"{report.ref}: {len(report.failed)} file(s) failed, first {first[0]}: {first[1]}",
            report.failed,
            hint="call again to resume; files already verified are kept",
        )
    return Path(report.path)


def resolve(
    ref: str,
    revision: str | None = None,
    *,
    kind: str | None = None,
    mirrors: Sequence[str | os.PathLike[str]] | None = None,
) -> Path:
    """The path of an entry inside the nearest configured mirror, to load in place.

    Reads only local mirrors (``NLMR_MIRRORS``, the ``NLMR_MIRROR_ROOT`` a mirror's
    module sets, or the configuration file); never the network, so it works on compute
    nodes.

    Args:
        ref: ``org/name`` or ``org/name@revision``.
        revision: a revision name, tag or full commit; None: the default revision.
        kind: ``model`` or ``dataset`` when an id names both.
        mirrors: mirror roots to use instead of the configured ones.

    Returns:
        The plain tree's directory (for the default revision, the entry's default link).

    Raises:
        nlmr.errors.NotFoundError: no configured mirror holds it.
    """
    from nlmr.resolver import resolve as _resolve

    return _resolve(ref, revision, kind=kind, mirrors=list(mirrors) if mirrors else None)
