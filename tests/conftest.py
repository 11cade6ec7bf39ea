"""Shared fixtures: small registries built on disk per test."""

from __future__ import annotations

import copy
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import seaweedfs

from nlmr.add import add
from nlmr.cards import card_to_yaml
from nlmr.dvcfile import DvcPointer
from nlmr.manifest import Manifest, ManifestFile
from nlmr.sync.engine import sync
from nlmr.target import Target, default_target

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_user_settings(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Tests see no mirror, catalogue or configuration file of the machine they run on."""
    monkeypatch.setenv("NLMR_CONFIG", str(tmp_path_factory.getbasetemp() / "no-config.yaml"))
    for name in ("NLMR_MIRRORS", "NLMR_MIRROR_ROOT", "NLMR_CATALOGUE"):
        monkeypatch.delenv(name, raising=False)


MODEL: dict[str, Any] = {
    "schema_version": 1,
    "id": "acme/tiny-bert",
    "type": "model",
    "title": "Tiny BERT",
    "summary": "A tiny test model.",
    "description": "Longer text.\n\nWith *Markdown*.",
    "languages": ["nb", "nn"],
    "license": "Apache-2.0",
    "creators": [{"name": "Ada Lovelace", "orcid": "0000-0002-1825-0097", "affiliation": "UiO"}],
    "maintainers": ["ada"],
    "date_published": "2024-05-01",
    "tags": ["test"],
    "framework": "transformers",
    "task": "fill-mask",
}

DATASET: dict[str, Any] = {
    "schema_version": 1,
    "id": "acme/corpus",
    "type": "dataset",
    "title": "Corpus",
    "summary": "A test corpus.",
    "languages": ["nb"],
    "license": "CC-BY-4.0",
    "creators": [{"name": "Ada Lovelace"}],
    "maintainers": ["ada"],
}


def file_entry(path: str, content: bytes, *, lfs: bool | None = None) -> ManifestFile:
    """A manifest entry with real digests of ``content``."""
    return ManifestFile(
        path=path,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        md5=hashlib.md5(content).hexdigest(),
        git_sha1=hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest(),
        lfs=path.endswith(".safetensors") if lfs is None else lfs,
    )


#: Card fields for `nlmr add` of a new test entry.
CARD = {
    "title": "Tiny BERT",
    "summary": "A tiny test model.",
    "license": "Apache-2.0",
    "languages": ["nb"],
    "creators": [{"name": "Test"}],
    "maintainers": ["tester"],
}


DEFAULT_FILES = {
    "config.json": b'{"architectures": ["BertForMaskedLM"]}',
    "model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ",
    "tokenizer.json": b"{}",
}


class RegistryBuilder:
    """Writes cards, manifests and pointers into a temporary registry."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "models").mkdir(parents=True, exist_ok=True)
        (root / "datasets").mkdir(parents=True, exist_ok=True)

    def entry_dir(self, data: dict[str, Any]) -> Path:
        sub = "models" if data.get("type") == "model" else "datasets"
        return self.root / sub / data["id"]

    def card(
        self, data: dict[str, Any] | None = None, *, text: str | None = None, **changes: Any
    ) -> Path:
        """Write a card (default: the model above, with ``changes`` applied)."""
        data = copy.deepcopy(data if data is not None else MODEL)
        data.update(changes)
        path = self.entry_dir(data) / "card.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if text is not None else card_to_yaml(data), encoding="utf-8")
        return path

    def stored_card(
        self,
        files: dict[str, bytes] | None = None,
        *,
        name: str = "main",
        manifest_extra: dict[str, Any] | None = None,
        **changes: Any,
    ) -> tuple[Path, Manifest]:
        """A card with one stored revision (upload source, derived id) and its files."""
        manifest = Manifest(
            tuple(
                sorted(
                    (file_entry(p, c) for p, c in (files or DEFAULT_FILES).items()),
                    key=lambda f: f.path,
                )
            ),
            auto_map=(manifest_extra or {}).get("auto_map"),
        )
        data = copy.deepcopy(MODEL)
        data["revisions"] = [
            {
                "name": name,
                "id": manifest.derived_revision_id(),
                "default": True,
                "source": {"type": "upload"},
            }
        ]
        data.update(changes)
        card = self.card(data)
        self.write_revision(card.parent, name, manifest)
        return card, manifest

    def write_revision(
        self, entry: Path, name: str, manifest: Manifest, pointer: DvcPointer | None = None
    ) -> None:
        rev = entry / "revisions"
        rev.mkdir(exist_ok=True)
        (rev / f"{name}.manifest.json").write_text(manifest.to_json(), encoding="utf-8")
        ptr = pointer or DvcPointer.for_manifest(manifest, name)
        (rev / f"{name}.dvc").write_text(ptr.to_yaml(), encoding="utf-8")


@pytest.fixture
def registry(tmp_path: Path) -> RegistryBuilder:
    return RegistryBuilder(tmp_path / "registry")


@pytest.fixture
def run_cli() -> Callable[..., tuple[int, str, str]]:
    """Run the CLI in-process through nlmr's own error handling; returns (code, stdout, stderr)."""
    from click.testing import CliRunner

    from nlmr.cli import main

    def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        runner = CliRunner()
        with runner.isolation(env=env) as streams:
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            out, err = streams[0].getvalue(), streams[1].getvalue()
        return code, out.decode(), err.decode()

    return invoke


# --- real S3 (SeaweedFS) and tiny real models ---------------------------------------------


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One SeaweedFS server per test session (per xdist worker)."""
    with seaweedfs.running(tmp_path_factory.mktemp("weed")) as server:
        yield server


@pytest.fixture
def s3(seaweed: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    """A fresh bucket on the session's server, and AWS settings pointing at it."""
    for key, value in seaweedfs.s3_env(seaweed).items():
        if key.startswith(("AWS_", "S3_")):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    return seaweed, seaweed.new_bucket()


def write_dvc_config(registry_root: Path, url: str, endpoint: str | None = None) -> None:
    """A .dvc/config as `dvc remote add -d storage URL` (+ endpointurl) writes it."""
    dvc = registry_root / ".dvc"
    dvc.mkdir(parents=True, exist_ok=True)
    text = f"[core]\n    remote = storage\n['remote \"storage\"']\n    url = {url}\n"
    if endpoint:
        text += f"    endpointurl = {endpoint}\n"
    (dvc / "config").write_text(text)


TINY_MODEL_SCRIPT = """
import os, sys, torch
from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast
out, pickled = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=37, max_position_embeddings=64)
model = BertForMaskedLM(cfg)
model.save_pretrained(out)
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(95)]
with open(os.path.join(out, "vocab.txt"), "w") as fh:
    fh.write("\\n".join(vocab) + "\\n")
BertTokenizerFast(vocab_file=os.path.join(out, "vocab.txt")).save_pretrained(out)
os.makedirs(pickled, exist_ok=True)
for name in os.listdir(out):
    if name != "model.safetensors":
        with open(os.path.join(out, name), "rb") as src:
            data = src.read()
        with open(os.path.join(pickled, name), "wb") as dst:
            dst.write(data)
torch.save(model.state_dict(), os.path.join(pickled, "pytorch_model.bin"))
"""


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny real BERT (save_pretrained) and the same weights as a pytorch_model.bin pickle."""
    base = tmp_path_factory.mktemp("tiny")
    out, pickled = base / "tiny-bert", base / "tiny-bert-pickle"
    subprocess.run(
        [sys.executable, "-c", TINY_MODEL_SCRIPT, str(out), str(pickled)],
        check=True,
        capture_output=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    return out, pickled


# --- a registry with a local store, and a mirror root ----------------------------------


def make_source(base: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = base / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return base


class World:
    """A registry with a local store, and a mirror root."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.reg = tmp / "registry"
        (self.reg / "models").mkdir(parents=True)
        (self.reg / "datasets").mkdir()
        self.store = tmp / "store"
        write_dvc_config(self.reg, str(self.store))
        self.root = tmp / "mirror"
        self._n = 0

    def add(
        self, entry_id: str, files: dict[str, bytes], revision: str | None = None, **kw: Any
    ) -> Any:
        self._n += 1
        src = make_source(self.tmp / f"src{self._n}", files)
        return add(
            str(src),
            entry_id,
            registry=self.reg,
            revision=revision,
            card_fields=CARD,
            progress=False,
            **kw,
        )

    def target(self, **changes: Any) -> Target:
        from dataclasses import replace

        return replace(default_target(self.root), **changes)

    def sync(self, target: Target | None = None, **kw: Any) -> Any:
        return sync(target or self.target(), registry=self.reg, progress=False, **kw)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


@pytest.fixture
def btrfs(tmp_path: Path) -> Any:
    """A small btrfs mounted from a loop image (reflinks), when this machine allows it."""
    import shutil

    if shutil.which("mkfs.btrfs") is None or os.geteuid() != 0:
        pytest.skip("needs mkfs.btrfs (btrfs-progs) and root to mount a loop image")
    image, mnt = tmp_path / "btrfs.img", tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(256 << 20)
    made = subprocess.run(["mkfs.btrfs", "-q", str(image)], capture_output=True, check=False)
    mounted = (
        made.returncode == 0
        and subprocess.run(
            ["mount", "-o", "loop", str(image), str(mnt)], capture_output=True, check=False
        ).returncode
        == 0
    )
    if not mounted:
        pytest.skip("cannot mount a loop device here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
