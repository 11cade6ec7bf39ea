"""BCP-47 language tags in cards: validation and normalisation (via ``langcodes``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

#: Written standards to suggest instead of the macrolanguage ``no``.
_BARE_NO_HINT = (
    "'no' is the Norwegian macrolanguage; write nb (Bokmål) and/or nn (Nynorsk) "
    "when the text is in one written standard"
)


@dataclass(frozen=True)
class LanguageCheck:
    """The verdict on one tag.

    Attributes:
        tag: as written in the card.
        normalized: the canonical form (``nob`` → ``nb``), or None when invalid.
        error: why the tag is invalid, if it is.
        warning: advice for a valid but doubtful tag.
    """

    tag: str
    normalized: str | None
    error: str | None = None
    warning: str | None = None


@functools.lru_cache(maxsize=4096)
def check_language(tag: str) -> LanguageCheck:
    """Validate and normalise one BCP-47 tag."""
    import langcodes

    if not langcodes.tag_is_valid(tag):
        return LanguageCheck(tag, None, error=f"{tag!r} is not a valid BCP-47 language tag")
    try:
        normalized = langcodes.standardize_tag(tag)
    except (ValueError, LookupError) as exc:
        return LanguageCheck(tag, None, error=f"{tag!r} is not a valid BCP-47 language tag ({exc})")
    if normalized in ("und", "zxx", "mul"):
        return LanguageCheck(
            tag, None, error=f"{tag!r} says no particular language; list the actual languages"
        )
    if normalized == "no" or normalized.startswith("no-"):
        return LanguageCheck(tag, normalized, warning=_BARE_NO_HINT)
    if normalized != tag:
        return LanguageCheck(
            tag, normalized, warning=f"write {normalized!r} (canonical form of {tag!r})"
        )
    return LanguageCheck(tag, normalized)


def normalize_languages(tags: list[str]) -> list[str]:
    """Canonical forms of valid tags, in order, without duplicates (invalid tags are kept as is)."""
    out: list[str] = []
    for tag in tags:
        norm = check_language(tag).normalized or tag
        if norm not in out:
            out.append(norm)
    return out
