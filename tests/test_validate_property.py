"""Property-based: whatever a card holds, validate reports problems or success, never crashes."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from conftest import MODEL, RegistryBuilder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlmr.validate import validate

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.sampled_from(
        [
            "no",
            "nb",
            "Apache-2.0",
            "a" * 40,
            "2024-02-30",
            "x/y",
            "LicenseRef-x",
            "../../etc",
            "main",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _check(text_or_bytes: str | bytes, *, stored: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        reg = RegistryBuilder(Path(tmp) / "registry")
        if stored:
            card, _ = reg.stored_card()
        else:
            card = reg.card()
        data = (
            text_or_bytes.encode("utf-8", "surrogatepass")
            if isinstance(text_or_bytes, str)
            else text_or_bytes
        )
        card.write_bytes(data)
        report = validate([reg.root])  # must not raise
        for p in report.problems:
            assert p.line >= 1 and p.col >= 1 and p.message and p.rule
            assert p.format().startswith(p.path + ":")


def _mutate(data: Any, path: list[Any], value: Any, action: str) -> Any:
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    last = path[-1]
    if action == "delete" and isinstance(node, dict):
        node.pop(last, None)
    else:
        node[last] = value
    return data


def _paths(data: Any, prefix: list[Any]) -> list[list[Any]]:
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, [*prefix, k])
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, [*prefix, i])
    return out


FULL = copy.deepcopy(MODEL) | {
    "revisions": [{"name": "main", "id": "a" * 40, "default": True, "source": {"type": "upload"}}],
    "training_data": [{"dataset": "acme/corpus"}],
    "links": {"paper": "https://example.org"},
}
PATHS = _paths(FULL, [])


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes(blob: bytes) -> None:
    _check(blob)


@SETTINGS
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    _check(text)


@SETTINGS
@given(st.sampled_from(PATHS), values, st.sampled_from(["set", "delete"]))
def test_mutated_field(path: list[Any], value: Any, action: str) -> None:
    mutated = _mutate(FULL, path, value, action)
    _check(yaml.safe_dump(mutated, allow_unicode=True))


@SETTINGS
@given(st.dictionaries(st.text(max_size=15), values, max_size=3))
def test_extra_fields(extra: dict[str, Any]) -> None:
    _check(yaml.safe_dump(copy.deepcopy(FULL) | extra, allow_unicode=True))


@SETTINGS
@given(st.data())
def test_character_edits(data: st.DataObject) -> None:
    text = yaml.safe_dump(FULL, allow_unicode=True, sort_keys=False)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        if data.draw(st.booleans()):
            text = text[:pos] + data.draw(st.text(max_size=3)) + text[pos:]
        else:
            text = text[:pos] + text[pos + data.draw(st.integers(1, 5)) :]
    _check(text)


@SETTINGS
@given(st.data())
def test_mutated_manifest_and_pointer(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        reg = RegistryBuilder(Path(tmp) / "registry")
        card, _ = reg.stored_card()
        target = (
            card.parent
            / "revisions"
            / data.draw(st.sampled_from(["main.manifest.json", "main.dvc"]))
        )
        original = (
            json.loads(target.read_text())
            if target.suffix == ".json"
            else yaml.safe_load(target.read_text())
        )
        paths = _paths(original, [])
        mutated = _mutate(
            original,
            data.draw(st.sampled_from(paths)),
            data.draw(values),
            data.draw(st.sampled_from(["set", "delete"])),
        )
        target.write_text(
            json.dumps(mutated) if target.suffix == ".json" else yaml.safe_dump(mutated)
        )
        for p in validate([reg.root]).problems:
            assert p.line >= 1 and p.message
