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

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nlmr.errors import CardError

#: Cards, pointers and manifests above this size are refused unparsed.
MAX_BYTES = 4 * 1024 * 1024

Pointer = tuple[str | int, ...]

_INT_RE = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$|^0x[0-9a-fA-F_]+$|^0o[0-7_]+$")
_FLOAT_RE = re.compile(
    r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$"
)
_BOOL_WORDS = {"true": True, "false": False}

_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_KNOWN_SCALARS = {
    _STR,
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}

try:  # the C parser is ~10x faster; fall back when libyaml is missing
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader

_constructor = yaml.SafeLoader("")


@dataclass(frozen=True)
class Document:
    """A parsed file: its data and where each value and key sits.

    Attributes:
        path: the file, as given (used in messages).
        data: the plain Python value (dicts, lists, str, int, float, bool, None).
        marks: pointer → (line, col) of the value node, 1-based.
        key_marks: pointer → (line, col) of the mapping key naming it.
    """

    path: str
    data: Any
    marks: Mapping[Pointer, tuple[int, int]] = field(repr=False)
    key_marks: Mapping[Pointer, tuple[int, int]] = field(repr=False)

    def locate(self, pointer: Pointer, *, key: bool = False) -> tuple[int, int]:
        """Line and column of a pointer, or of its nearest existing ancestor."""
        table = self.key_marks if key else self.marks
        p = tuple(pointer)
        while p:
            if p in table:
                return table[p]
            if p in self.marks:
                return self.marks[p]
            p = p[:-1]
        return self.marks.get((), (1, 1))


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
    return load_text(_check_bytes(name, raw), path=name)


def load_text(text: str, *, path: str) -> Document:
    """Parse YAML/JSON text into a :class:`Document`.

    Raises:
        CardError: on any syntax error or refused feature, located at its line.
    """
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
    if node is None:
        raise CardError(path, "empty file")
    builder = _Builder(path)
    data = builder.build(node, ())
    return Document(path=path, data=data, marks=builder.marks, key_marks=builder.key_marks)


class _Builder:
    def __init__(self, path: str) -> None:
        self.path = path
        self.marks: dict[Pointer, tuple[int, int]] = {}
        self.key_marks: dict[Pointer, tuple[int, int]] = {}
        self._seen: set[int] = set()

    def _alias_line(self, pointer: Pointer) -> int:
        # the alias itself has no node of its own: use the key (or list parent) naming it
        mark = self.key_marks.get(pointer) or self.marks.get(pointer[:-1], (1, 1))
        return mark[0]

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
        self.marks[pointer] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP:
                raise self._fail(node, pointer, f"unsupported YAML tag {node.tag}")
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self._fail(key_node, pointer, "YAML merge keys (<<) are not allowed")
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _KNOWN_SCALARS:
                    raise self._fail(key_node, pointer, "mapping keys must be plain strings")
                key = key_node.value
                child = (*pointer, key)
                if key in out:
                    first = self.key_marks[child]
                    raise self._fail(
                        key_node, child, f"duplicate key {key!r} (first defined on line {first[0]})"
                    )
                self.key_marks[child] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                out[key] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                raise self._fail(node, pointer, f"unsupported YAML tag {node.tag}")
            return [self.build(item, (*pointer, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, pointer)

    def _scalar(self, node: yaml.ScalarNode, pointer: Pointer) -> Any:
        tag, text = node.tag, node.value
        if tag not in _KNOWN_SCALARS:
            raise self._fail(node, pointer, f"unsupported YAML tag {tag}")
        # The C composer marks plain scalars with style "" and the Python one with None.
        if node.style or tag in (_STR, "tag:yaml.org,2002:timestamp"):
            return text  # quoted, block, or explicitly a string/date: keep the text
        if tag == "tag:yaml.org,2002:null":
            return None
        if tag == "tag:yaml.org,2002:bool":
            return _BOOL_WORDS.get(text.lower(), text)  # yes/no/on/off stay strings
        if tag == "tag:yaml.org,2002:int":
            return _constructor.construct_yaml_int(node) if _INT_RE.match(text) else text
        if _FLOAT_RE.match(text):  # float
            return _constructor.construct_yaml_float(node)
        return text
