"""nlmr.convert: pickle checkpoints → safetensors, safely."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nlmr.convert import ConversionError, convert_pickles, target_name
from nlmr.sources import open_source


def test_target_names() -> None:
    assert target_name("pytorch_model.bin") == "model.safetensors"
    assert target_name("pytorch_model-00001-of-00002.bin") == "model-00001-of-00002.safetensors"
    assert target_name("sub/weights.pt") == "sub/weights.safetensors"


def test_sharded_checkpoint_keeps_a_consistent_index(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    a, b = {"x.weight": torch.arange(6.0).reshape(2, 3)}, {"y.bias": torch.ones(4)}
    torch.save(a, src / "pytorch_model-00001-of-00002.bin")
    torch.save(b, src / "pytorch_model-00002-of-00002.bin")
    (src / "pytorch_model.bin.index.json").write_text(
        json.dumps(
            {
                "metadata": {"total_size": 40},
                "weight_map": {
                    "x.weight": "pytorch_model-00001-of-00002.bin",
                    "y.bias": "pytorch_model-00002-of-00002.bin",
                },
            }
        )
    )
    (src / "config.json").write_text("{}")
    result = convert_pickles(open_source(str(src)), tmp_path / "staging")
    assert result is not None
    names = [f.relpath for f in result.tree.files]
    assert names == [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
    ]
    index = json.loads(result.tree.get("model.safetensors.index.json").path.read_text())
    assert index["weight_map"] == {
        "x.weight": "model-00001-of-00002.safetensors",
        "y.bias": "model-00002-of-00002.safetensors",
    }
    assert torch.equal(
        load_file(result.tree.get("model-00001-of-00002.safetensors").path)["x.weight"],
        a["x.weight"],
    )
    assert result.tool.startswith("nlmr ") and "torch" in result.tool


def test_tied_weights_keep_one_name_and_overlaps_are_cloned(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    emb = torch.randn(5, 3)
    base = torch.arange(10.0)
    torch.save(
        {"emb": emb, "decoder": emb, "first": base[:5], "second": base[5:]},
        src / "pytorch_model.bin",
    )
    result = convert_pickles(open_source(str(src)), tmp_path / "staging")
    assert result is not None
    tensors = load_file(result.tree.get("model.safetensors").path)
    assert set(tensors) == {"emb", "first", "second"}
    assert torch.equal(tensors["second"], torch.arange(5.0, 10.0))


class _Evil:
    def __reduce__(self):
        return (__import__("os").system, (f"touch {MARKER}",))


MARKER = "/tmp/nlmr-pwned-marker"


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    Path(MARKER).unlink(missing_ok=True)
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"w": _Evil()}, fh)
    with pytest.raises(ConversionError, match="weights_only=True"):
        convert_pickles(open_source(str(src)), tmp_path / "staging")
    assert not Path(MARKER).exists()


def test_converted_model_loads_and_matches(tmp_path: Path, tiny_model: tuple[Path, Path]) -> None:
    from transformers import AutoModelForMaskedLM

    model, pickled = tiny_model
    result = convert_pickles(open_source(str(pickled)), tmp_path / "staging")
    assert result is not None
    out = tmp_path / "converted"
    out.mkdir()
    for f in result.tree.files:
        shutil.copyfile(f.path, out / f.relpath)
    ids = torch.tensor([[2, 7, 4, 9, 3]])
    a = AutoModelForMaskedLM.from_pretrained(model).eval()
    b = AutoModelForMaskedLM.from_pretrained(out).eval()
    with torch.no_grad():
        assert torch.equal(a(ids).logits, b(ids).logits)
    # and the conversion reproduces save_pretrained's file byte for byte
    assert (out / "model.safetensors").read_bytes() == (model / "model.safetensors").read_bytes()
