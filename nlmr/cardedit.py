"""Minimal edits to a hand-written ``card.yaml``: add a revision, move the default.

Cards are written by people, with comments and their own layout; re-dumping the
YAML would destroy both. These edits splice text at the positions the strict
loader records, then re-parse to check the result says exactly what was meant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from nlmr.cards import card_to_yaml
from nlmr.errors import CardError
from nlmr.yamlio import load_text


def _block(items: list[Mapping[str, Any]], indent: int) -> str:
    text = card_to_yaml({"x": items}).split("\n", 1)[1]  # drop the "x:" line
    return "".join(" " * indent + line + "\n" for line in text.splitlines())


def add_revision(
    text: str, revision: Mapping[str, Any], *, path: str, make_default: bool = False
) -> str:
    """The card text with ``revision`` appended to ``revisions:``.

    Args:
        text: the current card.
        revision: the new entry (plain data).
        path: the card's name, for messages.
        make_default: also set ``default: false`` on the revisions that were default.

    Raises:
        CardError: the card cannot be parsed, or the edit did not produce the intended card.
    """
    # Edit LF text without a BOM (the loader's positions count neither), then restore the
    # card's own conventions so the rest of the file stays byte for byte as it was.
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    crlf = "\r\n" in text
    text = text.removeprefix(bom).replace("\r\n", "\n")
    doc = load_text(text, path=path)
    if not isinstance(doc.data, dict):
        raise CardError(path, "a card is a mapping of fields")
    nodes, key_nodes = doc._positions
    existing = doc.data.get("revisions")
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), applied back to front

    if make_default and isinstance(existing, list):
        for i, rev in enumerate(existing):
            node = nodes.get(("revisions", i, "default"))
            if isinstance(rev, Mapping) and rev.get("default") is True and node is not None:
                edits.append((node.start_mark.index, node.end_mark.index, "false"))

    node = nodes.get(("revisions",))
    if node is None:
        # no revisions yet: append a new block at the end of the file
        tail = "" if text.endswith("\n") or not text else "\n"
        edits.append((len(text), len(text), f"{tail}revisions:\n{_block([revision], 0)}"))
    elif isinstance(node, yaml.SequenceNode) and not node.flow_style and existing:
        # A block sequence ends where the next token starts: the next key's line, or the end.
        at = node.end_mark.index
        line_start = text.rfind("\n", 0, at) + 1
        if text[line_start:at].strip():
            prefix = "\n"
        else:
            at, prefix = line_start, ""
            # comment lines (and blank lines) right above the next key describe that key:
            # the new item goes before them
            while at > 0:
                prev_start = text.rfind("\n", 0, at - 1) + 1
                prev = text[prev_start : at - 1]
                if prev.strip() and not prev.lstrip().startswith("#"):
                    break
                at = prev_start
        if at == len(text) and text and not text.endswith("\n"):
            prefix = "\n"
        edits.append((at, at, prefix + _block([revision], node.start_mark.column)))
    else:
        # `revisions:` with no value, `revisions: []` or a flow list: rewrite it as a block
        key = key_nodes[("revisions",)]
        items = [*(existing if isinstance(existing, list) else []), revision]
        if make_default:
            items = [
                {**r, "default": False}
                if isinstance(r, Mapping) and r.get("default") is True
                else r
                for r in items[:-1]
            ] + [revision]
        colon = text.index(":", key.end_mark.index) + 1
        end = max(colon, node.end_mark.index)
        edits = [(colon, end, "\n" + _block(items, key.start_mark.column).rstrip("\n"))]

    new = text
    for start, end, replacement in sorted(edits, reverse=True):
        new = new[:start] + replacement + new[end:]
    check = load_text(new, path=path).data
    revisions = check.get("revisions") if isinstance(check, dict) else None
    if not isinstance(revisions, list) or not revisions or revisions[-1] != dict(revision):
        raise CardError(
            path,
            "could not add the revision to the card automatically",
            hint="add it by hand under `revisions:`",
        )
    return bom + (new.replace("\n", "\r\n") if crlf else new)
