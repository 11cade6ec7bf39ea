"""Licenses: SPDX expressions in cards, Hugging Face license ids on export.

Cards hold SPDX expressions (validated with ``license-expression``) or
``LicenseRef-<name>`` with a link. The Hub has its own closed list of license
ids; the map below is explicit so exports are predictable, and everything not
in it is exported as ``license: other`` with ``license_name``/``license_link``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

#: SPDX id → Hugging Face license id, for the licenses both vocabularies name.
SPDX_TO_HF: dict[str, str] = {
    "Apache-2.0": "apache-2.0",
    "MIT": "mit",
    "AFL-3.0": "afl-3.0",
    "Artistic-2.0": "artistic-2.0",
    "BSL-1.0": "bsl-1.0",
    "BSD-2-Clause": "bsd-2-clause",
    "BSD-3-Clause": "bsd-3-clause",
    "BSD-3-Clause-Clear": "bsd-3-clause-clear",
    "CC0-1.0": "cc0-1.0",
    "CC-BY-2.0": "cc-by-2.0",
    "CC-BY-2.5": "cc-by-2.5",
    "CC-BY-3.0": "cc-by-3.0",
    "CC-BY-4.0": "cc-by-4.0",
    "CC-BY-SA-3.0": "cc-by-sa-3.0",
    "CC-BY-SA-4.0": "cc-by-sa-4.0",
    "CC-BY-NC-2.0": "cc-by-nc-2.0",
    "CC-BY-NC-3.0": "cc-by-nc-3.0",
    "CC-BY-NC-4.0": "cc-by-nc-4.0",
    "CC-BY-ND-4.0": "cc-by-nd-4.0",
    "CC-BY-NC-ND-3.0": "cc-by-nc-nd-3.0",
    "CC-BY-NC-ND-4.0": "cc-by-nc-nd-4.0",
    "CC-BY-NC-SA-2.0": "cc-by-nc-sa-2.0",
    "CC-BY-NC-SA-3.0": "cc-by-nc-sa-3.0",
    "CC-BY-NC-SA-4.0": "cc-by-nc-sa-4.0",
    "CDLA-Sharing-1.0": "cdla-sharing-1.0",
    "CDLA-Permissive-1.0": "cdla-permissive-1.0",
    "CDLA-Permissive-2.0": "cdla-permissive-2.0",
    "WTFPL": "wtfpl",
    "ECL-2.0": "ecl-2.0",
    "EPL-1.0": "epl-1.0",
    "EPL-2.0": "epl-2.0",
    "etalab-2.0": "etalab-2.0",
    "EUPL-1.1": "eupl-1.1",
    "EUPL-1.2": "eupl-1.2",
    "AGPL-3.0-only": "agpl-3.0",
    "GPL-2.0-only": "gpl-2.0",
    "GPL-3.0-only": "gpl-3.0",
    "LGPL-2.1-only": "lgpl-2.1",
    "LGPL-3.0-only": "lgpl-3.0",
    "ISC": "isc",
    "LPPL-1.3c": "lppl-1.3c",
    "MS-PL": "ms-pl",
    "MPL-2.0": "mpl-2.0",
    "ODC-By-1.0": "odc-by",
    "ODbL-1.0": "odbl",
    "OSL-3.0": "osl-3.0",
    "PostgreSQL": "postgresql",
    "OFL-1.1": "ofl-1.1",
    "NCSA": "ncsa",
    "Unlicense": "unlicense",
    "Zlib": "zlib",
    "PDDL-1.0": "pddl",
}
HF_TO_SPDX: dict[str, str] = {hf: spdx for spdx, hf in SPDX_TO_HF.items()}

_LICENSEREF = re.compile(r"^(DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+$")


@dataclass(frozen=True)
class LicenseCheck:
    """The verdict on one license expression.

    Attributes:
        expression: as written.
        normalized: canonical SPDX form, or None when invalid.
        refs: the ``LicenseRef-…`` symbols it uses (these need a ``license_link``).
        error, warning: what to tell the contributor.
    """

    expression: str
    normalized: str | None
    refs: tuple[str, ...] = ()
    error: str | None = None
    warning: str | None = None


@functools.lru_cache(maxsize=1)
def _licensing() -> object:
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


@functools.lru_cache(maxsize=4096)
def check_license(expression: str) -> LicenseCheck:
    """Validate and normalise an SPDX expression (``LicenseRef-`` symbols allowed)."""
    if not expression.strip():
        return LicenseCheck(expression, None, error="empty license expression")
    try:
        info = _licensing().validate(expression)  # type: ignore[attr-defined]
    except Exception:
        # license-expression 30.4 raises AttributeError on some malformed input
        # (e.g. "{MIT"); found by tests/test_validate_property.py. Bad input is
        # the contributor's mistake, so it gets a message, not a traceback.
        return LicenseCheck(
            expression, None, error=f"{expression!r} is not a valid SPDX expression"
        )
    refs = tuple(s for s in info.invalid_symbols if _LICENSEREF.match(s))
    unknown = [s for s in info.invalid_symbols if s not in refs]
    other_errors = [e for e in info.errors if not e.startswith("Unknown license key")]
    if other_errors or unknown:
        if unknown and not other_errors:
            import difflib

            known = list(SPDX_TO_HF)
            close = difflib.get_close_matches(unknown[0], known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return LicenseCheck(
                expression,
                None,
                refs,
                error=(
                    f"unknown SPDX license id {unknown[0]!r}{hint}; use an id from "
                    "https://spdx.org/licenses/ or LicenseRef-<name> with license_link"
                ),
            )
        return LicenseCheck(
            expression, None, refs, error=f"{expression!r} is not a valid SPDX expression"
        )
    normalized = info.normalized_expression if not refs else expression
    if normalized and normalized != expression:
        return LicenseCheck(
            expression, normalized, refs, warning=f"write {normalized!r} (canonical SPDX form)"
        )
    return LicenseCheck(expression, normalized or expression, refs)


def to_hf(license: str, license_name: str | None, license_link: str | None) -> dict[str, str]:
    """Hugging Face front-matter license fields for a card's license.

    Returns:
        ``{"license": id}`` for a license the Hub names, else ``{"license": "other",
        "license_name": …, "license_link": …}``.
    """
    check = check_license(license)
    spdx = check.normalized or license
    if spdx in SPDX_TO_HF:
        out = {"license": SPDX_TO_HF[spdx]}
        if license_link:
            out["license_link"] = license_link
        return out
    name = license_name or _default_license_name(spdx)
    out = {"license": "other", "license_name": name}
    if license_link:
        out["license_link"] = license_link
    return out


def _default_license_name(spdx: str) -> str:
    if _LICENSEREF.match(spdx):
        return spdx.split("LicenseRef-", 1)[1].lower()
    return re.sub(r"[^a-z0-9.]+", "-", spdx.lower()).strip("-")


def from_hf(
    license: str | None, license_name: str | None, license_link: str | None
) -> tuple[str | None, str | None, str | None]:
    """Card ``(license, license_name, license_link)`` from Hugging Face front matter.

    ``other`` (and ids nlmr does not map) become ``LicenseRef-<name>``; the
    name is kept only where it differs from what :func:`to_hf` would derive.
    """
    if license is None:
        return None, license_name, license_link
    if license in HF_TO_SPDX:
        return HF_TO_SPDX[license], None, license_link
    name = license_name or license
    ref = "LicenseRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-")
    keep_name = (
        license_name if license_name and _default_license_name(ref) != license_name else None
    )
    return ref, keep_name, license_link
