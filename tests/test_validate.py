"""nlmr.validate: every rule has a failing example, problems carry file and line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import DATASET, REPO, RegistryBuilder, file_entry

from nlmr.dvcfile import DvcPointer
from nlmr.manifest import Manifest
from nlmr.validate import Problem, load_card, validate


def problems(root: Path) -> list[Problem]:
    return list(validate([root]).problems)


def rules(root: Path, severity: str = "error") -> set[str]:
    return {p.rule for p in problems(root) if p.severity == severity}


def test_shipped_registry_is_valid_without_warnings() -> None:
    report = validate([REPO / "registry"])
    assert report.cards >= 5
    assert [p.format() for p in report.problems] == []


def test_valid_card_and_stored_revision(registry: RegistryBuilder) -> None:
    registry.card(DATASET)
    registry.stored_card()
    report = validate([registry.root])
    assert report.problems == ()
    assert report.cards == 2 and report.files == 2


def test_broken_card_reports_each_problem_on_its_line(registry: RegistryBuilder) -> None:
    text = """\
schema_version: 1
id: acme/tiny-bert
type: model
title: Tiny
summary: ok
lisence: MIT
languages: [nb, xx-foo]
license: Apache-2.0
creators: [{name: A}]
maintainers: [ada]
framework: transfomers
"""
    path = registry.card(text=text)
    found = problems(registry.root)
    lines = [p.format() for p in found]
    display = str(path)
    assert lines == [
        f"{display}:6:1: lisence: unknown field 'lisence' (did you mean 'license'?)",
        f"{display}:7:17: languages[1]: 'xx-foo' is not a valid BCP-47 language tag",
        f'{display}:11:12: framework: "transfomers" is not allowed (did you mean '
        "'transformers'?); one of: transformers, sentence-transformers, gensim, fasttext, "
        "allennlp, flair, spacy, stanza, peft, setfit, span-marker, adapter-transformers, …",
    ]


def _write(registry: RegistryBuilder, **changes: Any) -> Path:
    return registry.card(**changes)


REV = "0123456789abcdef0123456789abcdef01234567"
REV2 = "1123456789abcdef0123456789abcdef01234567"

# rule -> a function that makes a registry breaking that rule (and only checks it is reported)
CASES: dict[str, Any] = {
    "yaml": lambda r: r.card(text="id: [unclosed\n"),
    "schema": lambda r: r.card(summary="x" * 301),
    "schema-version": lambda r: r.card(schema_version=2),
    "id-path": lambda r: r.card(
        text=(r.card().read_text().replace("id: acme/tiny-bert", "id: acme/other"))
    ),
    "id-form": lambda r: r.card(id="acme/tiny--bert"),
    "id-unique": lambda r: (r.card(), r.card(id="acme/Tiny-Bert")),
    "language": lambda r: r.card(languages=["nb", "zz-bogus"]),
    "license": lambda r: r.card(license="LicenseRef-custom"),
    "orcid": lambda r: r.card(creators=[{"name": "X", "orcid": "0000-0002-1825-0098"}]),
    "date": lambda r: r.card(date_published="2023-02-30"),
    "revision-unique": lambda r: r.card(
        revisions=[{"name": "main", "id": REV, "default": True}, {"name": "main", "id": REV2}]
    ),
    "revision-id": lambda r: r.card(
        revisions=[
            {
                "name": "main",
                "id": REV,
                "default": True,
                "source": {"type": "huggingface", "repo": "up/stream", "commit": REV2},
            }
        ]
    ),
    "default-revision": lambda r: r.card(
        revisions=[{"name": "main", "id": REV}, {"name": "v1", "id": REV2}]
    ),
    "dataset-ref": lambda r: r.card(training_data=[{"dataset": "acme/missing"}]),
    "layout": lambda r: (
        r.card(),
        (r.root / "models/acme/tiny-bert/notes.txt").write_text("x"),
        Path(r.root / "models/acme/stray.yaml").write_text("x: 1"),
    ),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_card_rule_has_failing_example(registry: RegistryBuilder, rule: str) -> None:
    CASES[rule](registry)
    found = problems(registry.root)
    assert any(p.rule == rule for p in found), [p.format() for p in found]
    for p in found:  # every problem names a file and a real line
        assert p.path.endswith((".yaml", ".json", ".dvc")) and p.line >= 1 and p.col >= 1


def test_layout_stray_file_is_a_warning_card_outside_tree_is_error(
    registry: RegistryBuilder, tmp_path: Path
) -> None:
    registry.card()
    (registry.root / "models/acme/tiny-bert/notes.txt").write_text("x")
    assert rules(registry.root, "warning") == {"layout"}
    loose = tmp_path / "card.yaml"
    loose.write_text((registry.root / "models/acme/tiny-bert/card.yaml").read_text())
    assert "layout" in {p.rule for p in validate([loose]).errors}


def test_default_revision_cannot_be_yanked(registry: RegistryBuilder) -> None:
    registry.card(
        revisions=[
            {"name": "main", "id": REV, "default": True, "yanked": {"reason": "broken weights"}}
        ]
    )
    msgs = [p.message for p in problems(registry.root) if p.rule == "default-revision"]
    assert msgs and "cannot be yanked" in msgs[0]


def test_revision_name_must_not_look_like_commit(registry: RegistryBuilder) -> None:
    registry.card(revisions=[{"name": REV2, "id": REV, "default": True}])
    assert "revision-unique" in rules(registry.root)


def test_catalogued_revision_without_files_is_fine(registry: RegistryBuilder) -> None:
    registry.card(
        revisions=[
            {
                "name": "main",
                "id": REV,
                "default": True,
                "source": {"type": "huggingface", "repo": "up/stream", "commit": REV},
            }
        ]
    )
    assert problems(registry.root) == []


def test_existing_dataset_reference_passes(registry: RegistryBuilder) -> None:
    registry.card(DATASET)
    registry.card(training_data=[{"dataset": "acme/corpus"}, {"name": "external/thing"}])
    assert problems(registry.root) == []


def test_reference_with_wrong_case_suggests_the_card(registry: RegistryBuilder) -> None:
    registry.card(DATASET)
    registry.card(training_data=[{"dataset": "acme/Corpus"}])
    (p,) = [p for p in problems(registry.root) if p.rule == "dataset-ref"]
    assert "did you mean 'acme/corpus'" in p.message


# --- generated files ---------------------------------------------------------


def test_pointer_without_manifest(registry: RegistryBuilder) -> None:
    card, _ = registry.stored_card()
    (card.parent / "revisions/main.manifest.json").unlink()
    assert "revision-files" in rules(registry.root)


def test_orphan_generated_file(registry: RegistryBuilder) -> None:
    card, manifest = registry.stored_card()
    registry.write_revision(card.parent, "old", manifest)
    found = [p for p in problems(registry.root) if p.rule == "revision-files"]
    assert len(found) == 2 and all("belongs to no revision" in p.message for p in found)


@pytest.mark.parametrize(
    "bad_path, fragment",
    [
        ("../escape.json", "contains '..'"),
        ("/abs.json", "is absolute"),
        ("dir\\file.json", "backslash"),
        ("a//b.json", "not normalised"),
        ("./a.json", "not normalised"),
        (".git/config", "reserved name"),
        (".cache/huggingface/x", "reserves"),
        ("blobs.lock", "temporary files"),
        ("Config.JSON", "when case is folded"),
    ],
)
def test_manifest_path_rules(registry: RegistryBuilder, bad_path: str, fragment: str) -> None:
    files = {"config.json": b"{}", bad_path: b"x", "model.safetensors": b"0" * 16}
    _card, _ = registry.stored_card(files)
    found = [p for p in problems(registry.root) if p.rule == "manifest-path"]
    assert len(found) == 1 and fragment in found[0].message, [p.format() for p in found]
    assert found[0].path.endswith("main.manifest.json") and found[0].line > 1


def test_manifest_must_be_sorted(registry: RegistryBuilder) -> None:
    card, _manifest = registry.stored_card()
    path = card.parent / "revisions/main.manifest.json"
    data = json.loads(path.read_text())
    data["files"].reverse()
    path.write_text(json.dumps(data, indent=2))
    assert "manifest-path" in rules(registry.root)


@pytest.mark.parametrize(
    "name", ["pytorch_model.bin", "model.pt", "ckpt/last.ckpt", "w.pkl", "x.pth"]
)
def test_pickle_weights_rejected(registry: RegistryBuilder, name: str) -> None:
    registry.stored_card({"config.json": b"{}", name: b"\x80\x04pickle"})
    (p,) = [p for p in problems(registry.root) if p.rule == "pickle"]
    assert name in p.message and p.path.endswith("card.yaml")


def test_pickle_exemption_allows_matching_files_only(registry: RegistryBuilder) -> None:
    exemption = {"reason": "word2vec binary format, not a pickle", "patterns": ["*.bin"]}
    registry.stored_card({"model.bin": b"w2v", "other.pt": b"\x80"}, weights_exemption=exemption)
    (p,) = [p for p in problems(registry.root) if p.rule == "pickle"]
    assert "other.pt" in p.message and "model.bin" not in p.message


def test_custom_code_needs_trust_remote_code(registry: RegistryBuilder) -> None:
    registry.stored_card({"config.json": b"{}", "modeling_x.py": b"import torch"})
    assert "remote-code" in rules(registry.root)


def test_auto_map_needs_trust_remote_code(registry: RegistryBuilder) -> None:
    registry.stored_card(manifest_extra={"auto_map": {"AutoModel": "modeling_x.X"}})
    assert "remote-code" in rules(registry.root)


def test_custom_code_with_trust_remote_code_passes(registry: RegistryBuilder) -> None:
    registry.stored_card(
        {"config.json": b"{}", "modeling_x.py": b"import torch"},
        manifest_extra={"auto_map": {"AutoModel": "modeling_x.X"}},
        trust_remote_code=True,
    )
    assert problems(registry.root) == []


def test_upload_revision_id_must_be_derived(registry: RegistryBuilder) -> None:
    card, manifest = registry.stored_card()
    text = card.read_text().replace(manifest.derived_revision_id(), REV)
    card.write_text(text)
    (p,) = [p for p in problems(registry.root) if p.rule == "revision-id"]
    assert manifest.derived_revision_id() in p.message


POINTER_BREAKS = {
    "two outs": lambda t: (
        t + "- md5: 0123456789abcdef0123456789abcdef.dir\n  size: 1\n  nfiles: 1\n"
        "  hash: md5\n  path: main\n"
    ),
    "dvc2 (no hash)": lambda t: t.replace("  hash: md5\n", ""),
    "md5-dos2unix": lambda t: t.replace("hash: md5", "hash: md5-dos2unix"),
    "deps": lambda t: t + "deps:\n- path: data\n  md5: 0123456789abcdef0123456789abcdef\n",
    "cloud versioning": lambda t: t.replace("  hash: md5\n", "  hash: md5\n  version_id: abc\n"),
    "bad md5": lambda t: re.sub(r"md5: [0-9a-f]{32}\.dir", "md5: nothex.dir", t),
    "file not dir": lambda t: re.sub(r"(md5: [0-9a-f]{32})\.dir", r"\1", t),
    "wrong path": lambda t: t.replace("path: main", "path: ../elsewhere"),
    "frozen": lambda t: "frozen: true\n" + t,
}


@pytest.mark.parametrize("case", sorted(POINTER_BREAKS))
def test_dvc_pointer_rules(registry: RegistryBuilder, case: str) -> None:
    card, _ = registry.stored_card()
    ptr = card.parent / "revisions/main.dvc"
    ptr.write_text(POINTER_BREAKS[case](ptr.read_text()))
    found = [p for p in problems(registry.root) if p.rule == "dvc-pointer"]
    assert found, case
    assert all(p.path.endswith("main.dvc") for p in found)


@pytest.mark.parametrize("field", ["md5", "size", "nfiles"])
def test_dvc_pointer_must_agree_with_manifest(registry: RegistryBuilder, field: str) -> None:
    card, manifest = registry.stored_card()
    good = DvcPointer.for_manifest(manifest, "main")
    bad = {
        "md5": DvcPointer("0" * 32 + ".dir", good.size, good.nfiles, "main"),
        "size": DvcPointer(good.md5, good.size + 1, good.nfiles, "main"),
        "nfiles": DvcPointer(good.md5, good.size, good.nfiles + 1, "main"),
    }[field]
    registry.write_revision(card.parent, "main", manifest, bad)
    found = [p for p in problems(registry.root) if p.rule == "dvc-manifest"]
    assert [p.pointer for p in found] == [("outs", 0, field)]
    assert found[0].line == {"md5": 2, "size": 3, "nfiles": 4}[field]


def test_manifest_schema_errors_are_located(registry: RegistryBuilder) -> None:
    card, _manifest = registry.stored_card()
    path = card.parent / "revisions/main.manifest.json"
    data = json.loads(path.read_text())
    data["files"][1]["sha256"] = "xyz"
    path.write_text(json.dumps(data, indent=2))
    found = [p for p in problems(registry.root) if p.path.endswith("manifest.json")]
    assert [p.pointer for p in found] == [("files", 1, "sha256")]
    assert found[0].line == path.read_text().splitlines().index('      "sha256": "xyz",') + 1


def test_every_rule_in_the_code_has_a_test() -> None:
    source = (REPO / "nlmr/validate.py").read_text()
    used = set(re.findall(r'rule="([a-z-]+)"', source)) | set(
        re.findall(r'from_error\(exc, "([a-z-]+)"\)', source)
    )
    tested = set(CASES) | {
        "revision-files",
        "manifest-path",
        "pickle",
        "remote-code",
        "dvc-pointer",
        "dvc-manifest",
    }
    assert used <= tested, used - tested


def test_load_card_raises_first_error_with_location(registry: RegistryBuilder) -> None:
    from nlmr.errors import CardError

    path = registry.card(license="Nope-1.0")
    with pytest.raises(CardError) as info:
        load_card(path)
    assert info.value.line == path.read_text().splitlines().index("license: Nope-1.0") + 1
    assert info.value.pointer == ("license",)


def test_load_card_normalises_languages_and_license(registry: RegistryBuilder) -> None:
    card = load_card(registry.card(languages=["nob", "NN"], license="apache-2.0"))
    assert card.languages == ("nb", "nn") and card.license == "Apache-2.0"


def test_missing_path_is_a_problem(tmp_path: Path) -> None:
    report = validate([tmp_path / "nope"])
    assert [p.rule for p in report.errors] == ["layout"]


def test_static_embeddings_card_is_expressible(registry: RegistryBuilder) -> None:
    registry.stored_card(
        {"model.bin": b"w2v-binary", "meta.json": b"{}"},
        id="acme/nb-word2vec",
        framework="gensim",
        task="feature-extraction",
        weights_exemption={
            "reason": "word2vec C binary format, not a pickle",
            "patterns": ["model.bin"],
        },
        embeddings={
            "algorithm": {
                "name": "word2vec continuous skip-gram",
                "tool": "gensim",
                "version": "3.8",
            },
            "dimensions": 100,
            "vocabulary_size": 1000,
            "preprocessing": {"lemmatized": False, "case_preserved": True},
            "legacy_id": 58,
        },
    )
    assert problems(registry.root) == []


def test_manifest_round_trip_and_derived_id_is_stable() -> None:
    files = tuple(
        sorted((file_entry(p, c) for p, c in {"b": b"2", "a": b"1"}.items()), key=lambda f: f.path)
    )
    m = Manifest(files)
    again = Manifest.from_dict(json.loads(m.to_json()))
    assert again == m and again.derived_revision_id() == m.derived_revision_id()
    changed = Manifest((file_entry("a", b"1"), file_entry("b", b"3")))
    assert changed.derived_revision_id() != m.derived_revision_id()


@pytest.mark.parametrize("expr", ["{Apache-2.0", "A[pache-2.0", "MIT WITH", "(MIT", ""])
def test_malformed_license_expressions_are_errors_not_crashes(
    registry: RegistryBuilder, expr: str
) -> None:
    registry.card(license=expr)
    found = [p for p in problems(registry.root) if p.pointer == ("license",)]
    assert found and found[0].severity == "error"


def test_blob_id_follows_the_hub() -> None:
    big, small = file_entry("model.safetensors", b"w" * 8), file_entry("config.json", b"{}")
    assert big.lfs and big.blob_id == big.sha256
    assert not small.lfs and small.blob_id == small.git_sha1
    # the git blob id of "{}" as `git hash-object` computes it
    assert small.git_sha1 == "9e26dfeeb6e641a33dae4961196235bdb965b21b"
