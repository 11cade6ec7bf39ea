"""nlmr.yamlio: strict parsing with positions."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlmr.errors import CardError
from nlmr.yamlio import MAX_BYTES, load_path, load_text


def test_values_and_positions() -> None:
    doc = load_text("a: 1\nlist:\n  - x\n  - {k: v}\n", path="f.yaml")
    assert doc.data == {"a": 1, "list": ["x", {"k": "v"}]}
    assert doc.locate(("list", 1, "k")) == (4, 9)
    assert doc.locate(("list",), key=True) == (2, 1)
    assert doc.locate(("list", 7, "missing")) == (3, 3)  # nearest existing ancestor


def test_norway_problem_and_yaml11_oddities_stay_strings() -> None:
    doc = load_text(
        "langs: [nb, nn, no, NO, yes, off]\nd: 2024-05-01\nt: 1:20\no: 0755\n"
        "b: true\nn: ~\nf: 1.5\nh: 0x1f\n",
        path="f.yaml",
    )
    assert doc.data == {
        "langs": ["nb", "nn", "no", "NO", "yes", "off"],
        "d": "2024-05-01",
        "t": "1:20",
        "o": "0755",
        "b": True,
        "n": None,
        "f": 1.5,
        "h": 31,
    }


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("a: 1\nb: 2\na: 3\n", 3, "duplicate key 'a' (first defined on line 1)"),
        ("a: &x [1]\nb: *x\n", 2, "aliases"),
        ("? [1, 2]\n: v\n", 1, "keys must be plain strings"),
        ("a: !!python/object:os.system x\n", 1, "unsupported YAML tag"),
        ("a: !custom x\n", 1, "unsupported YAML tag"),
        ("a: 1\n---\nb: 2\n", 2, "more than one YAML document"),
        ("a: [1, 2\nb: 3\n", 2, "invalid YAML"),
        ("a:\n\tb: 1\n", 2, "invalid YAML"),
        ("", 1, "empty file"),
        ("a: 1\nb: \x07\n", 2, "control character U+0007"),
        ("<<: {a: 1}\n", 1, "merge keys"),
    ],
)
def test_refused_input(text: str, line: int, fragment: str) -> None:
    with pytest.raises(CardError) as info:
        load_text(text, path="f.yaml")
    assert info.value.line == line
    assert fragment in info.value.problem
    assert str(info.value).startswith(f"f.yaml:{line}:")


def test_billion_laughs_is_refused_quickly() -> None:
    text = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    with pytest.raises(CardError, match="aliases"):
        load_text(text, path="bomb.yaml")


def test_binary_huge_and_non_utf8_files(tmp_path: Path) -> None:
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"a: 1\nb: \x00\x01\x02")
    with pytest.raises(CardError, match="binary file") as info:
        load_path(binary)
    assert info.value.line == 2
    latin1 = tmp_path / "l.yaml"
    latin1.write_bytes("a: 1\nname: Øvrelid\n".encode("latin-1"))
    with pytest.raises(CardError, match="not UTF-8") as info:
        load_path(latin1)
    assert (info.value.line, info.value.col) == (2, 7)
    huge = tmp_path / "h.yaml"
    huge.write_bytes(b"a: " + b"x" * (MAX_BYTES + 10))
    with pytest.raises(CardError, match="at most"):
        load_path(huge)
    with pytest.raises(CardError, match="cannot read"):
        load_path(tmp_path / "missing.yaml")


def test_bom_and_json_are_accepted(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_bytes(b'\xef\xbb\xbf{\n  "files": [\n    {"path": "a"}\n  ]\n}\n')
    doc = load_path(p)
    assert doc.data == {"files": [{"path": "a"}]}
    assert doc.locate(("files", 0, "path")) == (3, 14)


def test_explicit_tags() -> None:
    doc = load_text("a: !!str 12\nb: !!int '7'\nc: !!float 2\nd: !!null ''\n", path="f.yaml")
    assert doc.data == {"a": "12", "b": 7, "c": 2.0, "d": None}
    with pytest.raises(CardError, match="is not a valid int") as info:
        load_text("a: 1\nb: !!int seven\n", path="f.yaml")
    assert info.value.line == 2


def test_json_fast_path_keeps_strictness_and_positions(tmp_path: Path) -> None:
    dup = tmp_path / "d.json"
    dup.write_text('{\n  "a": 1,\n  "a": 2\n}\n')
    with pytest.raises(CardError, match="duplicate key") as info:
        load_path(dup)
    assert info.value.line == 3
    nan = tmp_path / "n.json"
    nan.write_text('{"a": NaN}')
    assert load_path(nan).data == {"a": "NaN"}  # not a number: the schema will say so
    ok = tmp_path / "ok.json"
    ok.write_text('{\n  "a": {\n    "b": [1, 2]\n  }\n}\n')
    doc = load_path(ok)
    assert doc.positions is None  # parsed by json; positions computed on demand
    assert doc.locate(("a", "b", 1)) == (3, 14)
