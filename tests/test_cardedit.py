"""nlmr.cardedit: adding a revision keeps the contributor's text."""

from __future__ import annotations

import pytest

from nlmr.cardedit import add_revision
from nlmr.yamlio import load_text

NEW = {"name": "v2", "id": "b" * 40, "default": True, "source": {"type": "upload"}}
OLD = "a" * 40


@pytest.mark.parametrize(
    "text",
    [
        "id: a/b\ntitle: x  # keep me\n",
        "id: a/b\ntitle: x",
        "id: a/b\nrevisions: []\ntitle: x\n",
        f"id: a/b\nrevisions:\n- name: main  # first\n  id: {OLD}\n  default: true\n"
        "# note\ntitle: x\n",
        f"id: a/b\nrevisions:\n  - name: main\n    id: {OLD}\n    default: true\n",
        f"id: a/b\nrevisions: [{{name: main, id: '{OLD}', default: true}}]\n",
        "id: a/b\nrevisions:\ntitle: x\n",
        "id: a/b\nrevisions: ~  # none yet\ntitle: x\n",
    ],
)
def test_add_revision_and_move_default(text: str) -> None:
    out = add_revision(text, NEW, path="card.yaml", make_default=True)
    data = load_text(out, path="card.yaml").data
    assert data["revisions"][-1] == NEW
    assert [r["default"] for r in data["revisions"]].count(True) == 1
    if "title" in text:
        assert data["title"] == "x"
    for comment in ("# keep me", "# first", "# note"):
        if comment in text:
            assert comment in out


def test_add_without_moving_default() -> None:
    text = f"revisions:\n- name: main\n  id: {OLD}\n  default: true\n"
    new = {**NEW, "default": False}
    data = load_text(add_revision(text, new, path="c"), path="c").data
    assert [r["default"] for r in data["revisions"]] == [True, False]


def test_bom_and_crlf_are_kept() -> None:
    text = f"\ufeffid: a/b\r\nrevisions:\r\n- name: main\r\n  id: {OLD}\r\n  default: true\r\n"
    out = add_revision(text, NEW, path="c", make_default=True)
    assert out.startswith("\ufeffid: a/b\r\n") and "\n" not in out.replace("\r\n", "")
    data = load_text(out.removeprefix("\ufeff"), path="c").data
    assert [r["name"] for r in data["revisions"]] == ["main", "v2"]
    assert data["revisions"][0]["default"] is False


def test_comments_above_the_next_key_stay_with_it() -> None:
    text = (
        f"revisions:\n- name: main\n  id: {OLD}\n  default: true\n\n"
        "# the license below\nlicense: MIT\n"
    )
    out = add_revision(text, NEW, path="c", make_default=True)
    assert out.endswith("    type: upload\n\n# the license below\nlicense: MIT\n")
