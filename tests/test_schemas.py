"""nlmr.schemas: the fast validator agrees with jsonschema; messages are actionable."""

from __future__ import annotations

import copy
from typing import Any

from conftest import DATASET, MODEL
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_validate_property import FULL, _mutate, _paths, values

from nlmr.schemas import check, did_you_mean, is_valid, validator

MANIFEST = {
    "schema_version": 1,
    "files": [
        {
            "path": "a.json",
            "size": 2,
            "sha256": "a" * 64,
            "md5": "b" * 32,
            "git_sha1": "c" * 40,
            "lfs": False,
        }
    ],
    "auto_map": {"AutoModel": "m.M"},
}
POINTER = {
    "outs": [{"md5": "d" * 32 + ".dir", "size": 2, "nfiles": 1, "hash": "md5", "path": "main"}]
}
DOCS = {"model": FULL, "dataset": DATASET, "manifest": MANIFEST, "dvc": POINTER}


def _agree(kind: str, data: Any) -> None:
    slow_ok = not list(validator(kind).iter_errors(data))
    assert is_valid(kind, data) == slow_ok, (kind, data)
    assert (check(kind, data) == []) == slow_ok


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(DOCS)), st.data())
def test_fast_and_full_validators_agree(kind: str, data: st.DataObject) -> None:
    doc = copy.deepcopy(DOCS[kind])
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(doc, [])
        if not paths:
            break
        doc = _mutate(
            doc,
            data.draw(st.sampled_from(paths)),
            data.draw(values),
            data.draw(st.sampled_from(["set", "delete"])),
        )
    _agree(kind, doc)


def test_documents_are_valid() -> None:
    for kind, doc in DOCS.items():
        _agree(kind, doc)
        assert is_valid(kind, doc)
    assert is_valid("model", MODEL)


def test_unknown_field_suggestion_and_oneof_branch_errors() -> None:
    probs = check("model", {**MODEL, "langauges": ["nb"]})
    assert [p.message for p in probs] == ["unknown field 'langauges' (did you mean 'languages'?)"]
    assert probs[0].at_key and probs[0].pointer == ("langauges",)
    src = {
        **MODEL,
        "revisions": [
            {"name": "main", "id": "a" * 40, "source": {"type": "huggingface", "repo": "a/b"}}
        ],
    }
    (p,) = check("model", src)
    assert (
        p.pointer == ("revisions", 0, "source") and p.message == "missing required field 'commit'"
    )


def test_did_you_mean() -> None:
    assert did_you_mean("lisence", ["license", "languages"]) == "license"
    assert did_you_mean("jsonl", ["json", "csv"]) == "json"
    assert did_you_mean("zzz", ["license"]) is None
