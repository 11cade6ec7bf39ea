"""Strict YAML (and JSON) loading that remembers where every value came from.

Cards are written by hand, so errors must point at a line. PyYAML's composer
gives every node a start mark; we build plain Python values from the node tree
ourselves and keep a map from field pointer to (line, column).

The loader is stricter than ``yaml.safe_load`` on purpose:

* duplicate keys are errors (PyYAML silently keeps the last one);
* keys must be strings; aliases and custom tags are refused;
* YAML 1.1's implicit booleans are not applied: ``no``, ``yes``, ``on`` and
  ``off`` stay strings (the "Norway problem": ``languages: [nb, nn, no]``
  must not contain ``False``), and so are sexagesimal and octal-looking numbers;
* timestamps stay strings (``2024-05-01``), as JSON Schema expects;
* files that are huge, binary or not UTF-8 are refused before parsing.

JSON is a subset of YAML 1.2 for everything nlmr writes, so manifests go
through the same loader and get line numbers for free.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nlmr.errors import CardError

#: Cards, pointers and manifests above this size are refused unparsed.
MAX_BYTES = 4 * 1024 * 1024

Pointer = tuple[str | int, ...]

# YAML 1.2 core-schema resolution of plain scalars (PyYAML implements YAML 1.1).
_INT_RE = re.compile(r"[-+]?(0|[1-9](_?[0-9])*)|0x[0-9a-fA-F]+|0o[0-7]+")
# (no leading zeros: "0755" stays a string rather than becoming 755.0)
_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|(0|[1-9](_?[0-9])*)(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
#: Cards nest a few levels; libyaml and the builder recurse per level, and very deep
#: nesting overflows the C stack (a crash, not an exception). Refuse it up front.
MAX_DEPTH = 100
_SPECIAL_FLOATS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}

_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_PLAIN = "tag:nlmr,2024:plain"  # an untagged plain scalar, resolved by _core_schema
_EXPLICIT_SCALARS: dict[str, type] = {
    "tag:yaml.org,2002:int": int,
    "tag:yaml.org,2002:float": float,
    "tag:yaml.org,2002:bool": bool,
    "tag:yaml.org,2002:null": type(None),
}

try:  # the C parser is ~10x faster; fall back when libyaml is missing
    _Base: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Base = yaml.SafeLoader


class _Loader(_Base):  # type: ignore[misc]
    """Composes nodes only; tags untagged scalars as str (quoted) or plain.

    PyYAML's resolver (YAML 1.1, run in Python for every scalar) is both slow
    and wrong for us (``no`` → False), so we resolve plain scalars ourselves.
    """

    # Path-based resolvers are never registered; skipping their bookkeeping (called
    # from C for every node) saves a tenth of the parse time.
    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        pass

    def ascend_resolver(self) -> None:
        pass

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            return _PLAIN if implicit[0] else _STR
        return _SEQ if kind is yaml.SequenceNode else _MAP


def _core_schema(text: str) -> Any:
    """A plain scalar's value under the YAML 1.2 core schema (dates stay strings)."""
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if _INT_RE.fullmatch(text):
        try:
            return int(text, 0)
        except ValueError:  # more digits than Python converts (sys.int_info): keep the text
            return text
    if _FLOAT_RE.fullmatch(text):
        return float(text.replace("_", ""))
    special = _SPECIAL_FLOATS.get(text.lower())
    return special if special is not None else text


# pointer → the YAML node of the value, and pointer → the node of the key naming it.
# Nodes, not (line, col) tuples: turning marks into tuples for every value of every
# card costs more than parsing; positions are only needed when there is a problem.
Positions = tuple[dict[Pointer, yaml.Node], dict[Pointer, yaml.Node]]


def _at(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


@dataclass(frozen=True)
class Document:
    """A parsed file: its data and where each value and key sits.

    Attributes:
        path: the file, as given (used in messages).
        data: the plain Python value (dicts, lists, str, int, float, bool, None).
        text: the source text.
        positions: the YAML nodes of values and keys by pointer. JSON files parsed on
            the fast path leave it None; it is then computed on first use.
    """

    path: str
    data: Any
    text: str = field(repr=False)
    positions: Positions | None = field(default=None, repr=False, compare=False)

    @functools.cached_property
    def _positions(self) -> Positions:
        if self.positions is not None:
            return self.positions
        try:
            return _parse(self.text, self.path)[1]
        except CardError:  # valid JSON that YAML will not read: no positions, but no crash
            return {}, {}

    def locate(self, pointer: Pointer, *, key: bool = False) -> tuple[int, int]:
        """Line and column of a pointer, or of its nearest existing ancestor."""
        marks, key_marks = self._positions
        table = key_marks if key else marks
        p = tuple(pointer)
        while p:
            if p in table:
                return _at(table[p])
            if p in marks:
                return _at(marks[p])
            p = p[:-1]
        return _at(marks[()]) if () in marks else (1, 1)


def _check_bytes(path: str, raw: bytes) -> str:
    if len(raw) > MAX_BYTES:
        raise CardError(
            path, f"file is {len(raw):,} bytes; nlmr reads at most {MAX_BYTES:,} bytes here"
        )
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise CardError(path, "binary file (contains a NUL byte): expected UTF-8 text", line=line)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise CardError(
            path, f"not UTF-8 text (byte 0x{raw[exc.start]:02x})", line=line, col=col
        ) from None


def load_path(path: str | Path, *, display: str | None = None) -> Document:
    """Read and parse a YAML or JSON file.

    Args:
        path: the file.
        display: how to name the file in messages (defaults to ``str(path)``).

    Raises:
        CardError: unreadable, too large, binary, malformed, or using refused YAML features.
    """
    name = display if display is not None else str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise CardError(name, f"cannot read: {exc.strerror or exc}") from exc
    text = _check_bytes(name, raw)
    if name.endswith(".json"):
        data = _fast_json(text)
        if data is not _NOT_JSON:
            return Document(path=name, data=data, text=text)
    return load_text(text, path=name)


_NOT_JSON = object()


class _Reject(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Reject("duplicate key")
    return out


def _no_constant(name: str) -> Any:
    raise _Reject(name)


def _fast_json(text: str) -> Any:
    """Strict JSON via the C parser; ``_NOT_JSON`` when the YAML path must decide (and locate)."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return _NOT_JSON


def load_text(text: str, *, path: str) -> Document:
    """Parse YAML/JSON text into a :class:`Document`.

    Raises:
        CardError: on any syntax error or refused feature, located at its line.
    """
    data, positions = _parse(text, path)
    return Document(path=path, data=data, text=text, positions=positions)


_DEEP_INDENT = re.compile(rf"^[ \-?:]{{{2 * MAX_DEPTH + 2},}}", re.M)


def _nesting_problem(text: str) -> tuple[int, str] | None:
    """(line, message) when the text nests deeper than :data:`MAX_DEPTH` (a cheap upper bound:
    leading indentation or ``- `` markers on a line, and open brackets)."""
    message = f"nested deeper than {MAX_DEPTH} levels"
    deep = _DEEP_INDENT.search(text)
    if deep:
        return text.count("\n", 0, deep.start()) + 1, message
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # the usual case: nothing to scan
        return None
    depth = 0
    for number, line in enumerate(text.split("\n"), 1):
        for ch in line:
            if ch in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    return number, message
            elif ch in "]}":
                depth = max(0, depth - 1)
    return None


def _parse(text: str, path: str) -> tuple[Any, Positions]:
    deep = _nesting_problem(text)
    if deep:
        raise CardError(path, deep[1], line=deep[0])
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or exc.context or "syntax error"
        if "expected a single document" in str(exc):
            what = "more than one YAML document (remove the extra '---')"
        raise CardError(path, f"invalid YAML: {what}", line=line, col=col) from None
    except yaml.reader.ReaderError as exc:  # control characters; no problem_mark here
        line = text.count("\n", 0, exc.position) + 1
        raise CardError(
            path, f"invalid YAML: control character U+{exc.character:04X} is not allowed", line=line
        ) from None
    except yaml.YAMLError as exc:
        raise CardError(path, f"invalid YAML: {exc}".splitlines()[0]) from None
    except RecursionError:
        raise CardError(path, f"nested deeper than {MAX_DEPTH} levels") from None
    if node is None:
        raise CardError(path, "empty file")
    builder = _Builder(path)
    data = builder.build(node, ())
    return data, (builder.marks, builder.key_marks)


class _Builder:
    def __init__(self, path: str) -> None:
        self.path = path
        self.marks: dict[Pointer, yaml.Node] = {}
        self.key_marks: dict[Pointer, yaml.Node] = {}
        self._seen: set[int] = set()

    def _alias_line(self, pointer: Pointer) -> int:
        # the alias itself has no node of its own: use the key (or list parent) naming it
        node = self.key_marks.get(pointer) or self.marks.get(pointer[:-1])
        return _at(node)[0] if node is not None else 1

    def _fail(self, node: yaml.Node, pointer: Pointer, message: str) -> CardError:
        m = node.start_mark
        return CardError(self.path, message, line=m.line + 1, col=m.column + 1, pointer=pointer)

    def build(self, node: yaml.Node, pointer: Pointer) -> Any:
        # An alias yields the very same node object twice; refusing revisits
        # also defuses "billion laughs" expansion.
        if id(node) in self._seen:
            line = node.start_mark.line + 1
            raise CardError(
                self.path,
                "YAML aliases (*name) are not allowed: write the value out "
                f"(anchor on line {line})",
                pointer=pointer,
                line=self._alias_line(pointer),
            )
        self._seen.add(id(node))
        self.marks[pointer] = node
        kind = type(node)
        if kind is yaml.MappingNode:
            if node.tag != _MAP:
                raise self._fail(node, pointer, f"unsupported YAML tag {node.tag}")
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if type(key_node) is not yaml.ScalarNode or key_node.tag not in (_PLAIN, _STR):
                    raise self._fail(key_node, pointer, "mapping keys must be plain strings")
                if key_node.tag == _PLAIN and key_node.value == "<<":
                    raise self._fail(key_node, pointer, "YAML merge keys (<<) are not allowed")
                key = key_node.value
                child = (*pointer, key)
                if key in out:
                    first = _at(self.key_marks[child])[0]
                    raise self._fail(
                        key_node, child, f"duplicate key {key!r} (first defined on line {first})"
                    )
                self.key_marks[child] = key_node
                out[key] = self.build(value_node, child)
            return out
        if kind is yaml.SequenceNode:
            if node.tag != _SEQ:
                raise self._fail(node, pointer, f"unsupported YAML tag {node.tag}")
            return [self.build(item, (*pointer, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, pointer)

    def _scalar(self, node: yaml.ScalarNode, pointer: Pointer) -> Any:
        tag, text = node.tag, node.value
        if tag == _PLAIN:
            return _core_schema(text)
        if tag in (_STR, "tag:yaml.org,2002:timestamp"):
            return text  # quoted, block, !!str or !!timestamp: keep the text
        expected = _EXPLICIT_SCALARS.get(tag)
        if expected is None:
            raise self._fail(node, pointer, f"unsupported YAML tag {tag}")
        value = _core_schema(text)
        if expected is float and type(value) in (int, float):
            return float(value)
        if type(value) is expected:
            return value
        raise self._fail(node, pointer, f"{text!r} is not a valid {tag.rsplit(':', 1)[1]}")
