"""The JSON Schemas in ``schemas/`` and the translation of their errors into
messages a contributor can act on.

The schema files are the single source of truth for the card format: the
validator uses them, and docs/cards.md is generated from them. In a checkout
they are read from ``<repo>/schemas``; an installed wheel carries a copy as
``nlmr/_schemas``.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlmr.yamlio import Pointer

#: Schema file per document kind.
SCHEMA_FILES: dict[str, str] = {
    "model": "model-card.schema.json",
    "dataset": "dataset-card.schema.json",
    "manifest": "manifest.schema.json",
    "dvc": "dvc-pointer.schema.json",
    "sync-target": "sync-target.schema.json",
    "catalogue": "catalogue.schema.json",
}
COMMON = "common.schema.json"


def schema_dir() -> Path:
    """Directory holding the schema files (installed copy first, then the checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_schemas", here.parent / "schemas"):
        if (candidate / COMMON).is_file():
            return candidate
    raise FileNotFoundError("nlmr's JSON schemas are missing from the installation")


@functools.cache
def load_schema(filename: str) -> dict[str, Any]:
    """The parsed schema file ``filename`` (cached)."""
    with open(schema_dir() / filename, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@functools.cache
def _registry() -> Any:
    from referencing import Registry, Resource

    resources = []
    for path in sorted(schema_dir().glob("*.schema.json")):
        schema = load_schema(path.name)
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@functools.cache
def validator(kind: str) -> Any:
    """A ready ``Draft202012Validator`` for ``kind`` (a key of :data:`SCHEMA_FILES`)."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(SCHEMA_FILES[kind]), registry=_registry())


@dataclass(frozen=True)
class SchemaProblem:
    """One schema violation, already phrased for a human.

    Attributes:
        pointer: where in the document.
        message: what is wrong and, where we can tell, how to fix it.
        at_key: True when the position is the mapping key (unknown fields).
    """

    pointer: Pointer
    message: str
    at_key: bool = False


def _edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: typos, including swapped letters, cost 1."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def did_you_mean(word: str, choices: list[str]) -> str | None:
    """The choice ``word`` is most likely a typo of, if any."""
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return lowered[word.lower()]
    budget = max(1, min(3, len(word) // 3))
    scored = sorted((_edit_distance(word.lower(), c.lower()), c) for c in choices)
    if scored and scored[0][0] <= budget:
        return scored[0][1]
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.75)
    return close[0] if close else None


def _did_you_mean(word: str, choices: list[str]) -> str:
    guess = did_you_mean(word, choices)
    return f" (did you mean {guess!r}?)" if guess else ""


def _describe_type(instance: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "empty (null)",
    }.get(type(instance), type(instance).__name__)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@functools.cache
def _fast_validator(kind: str) -> Any:
    """A fastjsonschema-compiled validator: ~30x faster than jsonschema on valid documents.

    It stops at the first error and its messages are terse, so it only answers
    "valid?"; :func:`check` asks jsonschema for the full, located list when it
    says no. tests/test_schemas.py checks that both agree on mutated documents.
    """
    import fastjsonschema

    # fastjsonschema rewrites $refs in the dicts it is given: hand it copies, so the
    # cached schemas stay as the files say (the docs generator reads them too).
    def fetch(uri: str) -> Any:  # our $refs point at sibling schema files, never the network
        return copy.deepcopy(load_schema(uri.rsplit("/", 1)[1]))

    return fastjsonschema.compile(
        copy.deepcopy(load_schema(SCHEMA_FILES[kind])), handlers={"https": fetch}, use_formats=False
    )


def is_valid(kind: str, data: Any) -> bool:
    """Fast yes/no: does ``data`` satisfy the schema of ``kind``?"""
    import fastjsonschema

    try:
        _fast_validator(kind)(data)
    except fastjsonschema.JsonSchemaException:
        return False
    except Exception:
        return False
    return True


def check(kind: str, data: Any) -> list[SchemaProblem]:
    """Validate ``data`` against the schema of ``kind``.

    Returns:
        Problems sorted by position, one per violation (unknown keys: one per key).
    """
    if is_valid(kind, data):
        return []
    v = validator(kind)
    problems: list[SchemaProblem] = []
    for error in v.iter_errors(data):
        problems.extend(_translate(error))
    problems.sort(key=lambda p: tuple(str(x) for x in p.pointer))
    return problems


def _chosen_branch(error: Any) -> list[Any]:
    """The errors of the one ``oneOf`` branch the instance evidently meant.

    A branch is ruled out when it fails at the instance itself on ``type`` or on a
    discriminating ``const`` (``source.type: upload``) or ``required`` key. When
    exactly one branch is left, its errors are more useful than "matches nothing".
    """
    by_branch: dict[int, list[Any]] = {}
    for sub in error.context or ():
        by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
    candidates = []
    for errors in by_branch.values():
        ruled_out = any(
            (e.validator == "type" and not e.relative_path)
            or (e.validator == "const" and len(e.relative_path) == 1)
            for e in errors
        )
        if not ruled_out:
            candidates.append(errors)
    return candidates[0] if len(candidates) == 1 else []


def _translate(error: Any) -> list[SchemaProblem]:
    pointer: Pointer = tuple(error.absolute_path)
    validator_name = error.validator
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    instance = error.instance
    custom = schema.get("x-message") if isinstance(schema, Mapping) else None

    if validator_name == "additionalProperties" and isinstance(instance, Mapping):
        allowed = list(schema.get("properties", {}))
        unknown = [k for k in instance if k not in allowed]
        out = []
        for key in unknown:
            hint = _did_you_mean(key, allowed)
            extra = f"; {custom}" if custom and not hint else ""
            out.append(SchemaProblem((*pointer, key), f"unknown field {key!r}{hint}{extra}", True))
        return out
    if validator_name == "required":
        missing = [k for k in error.validator_value if k not in instance]
        return [SchemaProblem(pointer, f"missing required field {k!r}") for k in missing]
    if validator_name == "type":
        want = error.validator_value
        want_s = " or ".join(want) if isinstance(want, list) else want
        article = "an" if str(want_s)[0] in "aeiou" else "a"
        return [
            SchemaProblem(pointer, f"expected {article} {want_s}, got {_describe_type(instance)}")
        ]
    if validator_name == "enum":
        choices = [str(c) for c in error.validator_value]
        hint = _did_you_mean(str(instance), choices)
        listing = ", ".join(choices) if len(choices) <= 12 else ", ".join(choices[:12]) + ", …"
        return [
            SchemaProblem(pointer, f"{_short(instance)} is not allowed{hint}; one of: {listing}")
        ]
    if validator_name == "const":
        return [
            SchemaProblem(
                pointer,
                custom or f"must be {_short(error.validator_value)}, got {_short(instance)}",
            )
        ]
    if validator_name in ("maxLength", "minLength") and isinstance(instance, str):
        if validator_name == "maxLength":
            msg = f"is {len(instance)} characters; at most {error.validator_value} allowed"
        else:
            msg = (
                "must not be empty"
                if error.validator_value == 1
                else (f"must be at least {error.validator_value} characters")
            )
        return [SchemaProblem(pointer, msg)]
    if validator_name in ("minItems", "maxItems"):
        if custom:
            return [SchemaProblem(pointer, custom)]
        if validator_name == "minItems":
            return [SchemaProblem(pointer, f"needs at least {error.validator_value} item(s)")]
        return [SchemaProblem(pointer, f"allows at most {error.validator_value} item(s)")]
    if validator_name == "uniqueItems":
        seen: set[str] = set()
        dups = []
        for item in instance:
            key = json.dumps(item, sort_keys=True, default=str)
            if key in seen:
                dups.append(_short(item))
            seen.add(key)
        return [SchemaProblem(pointer, f"duplicate item(s): {', '.join(dups)}")]
    if validator_name in ("oneOf", "anyOf"):
        branch = _chosen_branch(error)
        if branch:
            return [p for sub in branch for p in _translate(sub)]
        return [
            SchemaProblem(pointer, custom or f"{_short(instance)} does not match any allowed form")
        ]
    if validator_name in ("minimum", "maximum"):
        return [
            SchemaProblem(
                pointer,
                f"must be {'≥' if validator_name == 'minimum' else '≤'} "
                f"{error.validator_value}, got {_short(instance)}",
            )
        ]
    if validator_name == "minProperties":
        return [SchemaProblem(pointer, "must not be empty")]
    if custom:
        return [SchemaProblem(pointer, f"{_short(instance)}: {custom}")]
    return [SchemaProblem(pointer, error.message)]
