"""The docs stay true: generated pages match their sources, every field is documented."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from conftest import REPO

from nlmr import _docgen
from nlmr.cards import DatasetCard, ModelCard
from nlmr.schemas import SCHEMA_FILES, load_schema, schema_dir


@pytest.mark.parametrize("page", sorted(_docgen.PAGES))
def test_generated_page_is_current(page: str) -> None:
    text = (REPO / "docs" / page).read_text(encoding="utf-8")
    assert text == _docgen.PAGES[page](), f"docs/{page} is stale: run `python dev.py docs`"


def _properties(node: Any, where: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(node, Mapping):
        for name, prop in (node.get("properties") or {}).items():
            yield f"{where}.{name}", prop
        for key, value in node.items():
            if key != "properties":
                yield from _properties(value, f"{where}/{key}")
            else:
                for name, prop in value.items():
                    yield from _properties(prop, f"{where}.{name}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _properties(item, f"{where}[{i}]")


def _described(prop: Mapping[str, Any]) -> bool:
    if prop.get("description"):
        return True
    ref = prop.get("$ref")
    if not ref:
        return False
    file_part, _, fragment = ref.partition("#")
    target: Any = load_schema(file_part or "common.schema.json")
    for part in [p for p in fragment.split("/") if p]:
        target = target[part]
    return _described(target)


def test_every_schema_field_has_a_description() -> None:
    missing = []
    for path in sorted(schema_dir().glob("*.schema.json")):
        for where, prop in _properties(load_schema(path.name), path.name):
            if not _described(prop):
                missing.append(where)
    assert missing == []


@pytest.mark.parametrize("cls, kind", [(ModelCard, "model"), (DatasetCard, "dataset")])
def test_dataclasses_and_schemas_name_the_same_fields(cls: type, kind: str) -> None:
    schema_fields = set(load_schema(SCHEMA_FILES[kind])["properties"])
    assert {f.name for f in dataclasses.fields(cls)} == schema_fields


def test_every_card_field_appears_in_the_reference() -> None:
    text = (REPO / "docs/cards.md").read_text(encoding="utf-8")
    for kind in ("model", "dataset"):
        for name in load_schema(SCHEMA_FILES[kind])["properties"]:
            assert f"| `{name}` |" in text, name


def test_every_validation_rule_is_documented() -> None:
    source = (REPO / "nlmr/validate.py").read_text()
    rules = set(re.findall(r'rule="([a-z-]+)"', source)) | set(
        re.findall(r'from_error\(exc, "([a-z-]+)"\)', source)
    )
    page = (REPO / "docs/validation.md").read_text(encoding="utf-8")
    assert [r for r in sorted(rules) if f"`{r}`" not in page] == []


def test_readme_has_exactly_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", readme, flags=re.S)
    first = [line for line in blocks[0].splitlines() if line.strip()]
    assert first == ["python3 dev.py demo", "python3 dev.py test"]
    assert "python3 dev.py test" in (REPO / ".ci/run").read_text()
