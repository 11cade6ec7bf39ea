"""Pickle weights → safetensors, for ``nlmr add``.

Only PyTorch checkpoints are converted (``pytorch_model*.bin``, ``*.pt``, ``*.pth``,
``*.ckpt``). They are read with ``torch.load(weights_only=True)``, which refuses
anything but tensors and plain containers: a malicious pickle fails to load
instead of running. Shared tensors (tied weights) keep one name, as ``save_pretrained``
does, since safetensors stores no aliasing; sharded checkpoints keep a consistent
index (``weight_map`` renamed to the new files).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlmr.errors import NlmrError
from nlmr.sources import SourceFile, SourceTree

_SHARD = re.compile(r"^(.*?)pytorch_model(-\d{5}-of-\d{5})?\.bin$")
_INDEX = "pytorch_model.bin.index.json"


class ConversionError(NlmrError):
    """A pickle checkpoint could not be converted (or loaded safely)."""


@dataclass(frozen=True)
class Converted:
    """The result: the new tree (pickles replaced) and what was converted into what."""

    tree: SourceTree
    pickles: tuple[str, ...]
    safetensors: tuple[str, ...]
    tool: str


def convertible(relpath: str) -> bool:
    """Whether ``relpath`` is a PyTorch checkpoint nlmr converts."""
    name = relpath.rsplit("/", 1)[-1]
    return bool(_SHARD.match(name)) or name.endswith((".pt", ".pth", ".ckpt"))


def target_name(relpath: str) -> str:
    """``pytorch_model-00001-of-00002.bin`` → ``model-00001-of-00002.safetensors``, etc."""
    head, _, name = relpath.rpartition("/")
    m = _SHARD.match(name)
    if m:
        new = f"{m.group(1)}model{m.group(2) or ''}.safetensors"
    else:
        new = name.rsplit(".", 1)[0] + ".safetensors"
    return f"{head}/{new}" if head else new


def _state_dict(path: Path) -> dict[str, Any]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise ConversionError(
            f"{path.name}: not loadable as plain tensors with weights_only=True "
            f"({type(exc).__name__}); "
            "nlmr never unpickles arbitrary objects",
            hint="convert it yourself to safetensors, or if it is not a pickle (e.g. word2vec "
            "binary), add `weights_exemption` to the card",
        ) from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]  # PyTorch Lightning checkpoints
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConversionError(f"{path.name}: not a state dict of tensors")
    return obj


def _detach_shared(state: dict[str, Any]) -> dict[str, Any]:
    """Make a state dict safetensors can store.

    Tied weights (two names for the very same tensor, e.g. BERT's decoder and word
    embeddings) keep only their first name, as ``save_pretrained`` does; transformers
    ties them again on load. Tensors that merely overlap another's storage are cloned.
    """
    views: set[tuple[int, tuple[int, ...], tuple[int, ...], Any]] = set()
    storages: set[int] = set()
    out = {}
    for name, tensor in state.items():
        view = (tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
        if view in views and tensor.numel() > 0:
            continue
        views.add(view)
        storage = tensor.untyped_storage().data_ptr()
        t = tensor.contiguous()
        if storage in storages and tensor.numel() > 0:
            t = t.clone()
        storages.add(storage)
        out[name] = t
    return out


def convert_pickles(tree: SourceTree, staging: Path) -> Converted | None:
    """Convert the tree's PyTorch pickles into ``staging``; None when there are none.

    Raises:
        ConversionError: torch/safetensors missing, or a file cannot be loaded safely.
    """
    pickles = [f for f in tree.files if convertible(f.relpath)]
    if not pickles:
        return None
    try:
        import safetensors
        import torch
        from safetensors.torch import save_file
    except ImportError as exc:
        raise ConversionError(
            f"{len(pickles)} pickle checkpoint(s) ({pickles[0].relpath}…) need converting to "
            "safetensors, which needs torch and safetensors",
            hint="pip install 'nlmr[hf]'",
        ) from exc
    from nlmr import __version__

    renamed: dict[str, str] = {}
    new_files: list[SourceFile] = []
    for src in pickles:
        dest_rel = target_name(src.relpath)
        if tree.get(dest_rel) is not None:
            raise ConversionError(
                f"{src.relpath}: {dest_rel} already exists beside it",
                hint="remove one of the two before adding",
            )
        dest = staging / dest_rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        state = _detach_shared(_state_dict(src.path))
        save_file(state, str(dest), metadata={"format": "pt"})
        del state
        renamed[src.relpath] = dest_rel
        new_files.append(SourceFile(dest_rel, dest, True))
    dropped = set(renamed)
    index = tree.get(_INDEX)
    if index is not None:
        data = json.loads(index.path.read_text(encoding="utf-8"))
        head = index.relpath.rpartition("/")[0]
        prefix = f"{head}/" if head else ""
        data["weight_map"] = {
            k: renamed.get(prefix + v, prefix + v).removeprefix(prefix)
            for k, v in data.get("weight_map", {}).items()
        }
        new_index = staging / "model.safetensors.index.json"
        new_index.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        new_files.append(SourceFile("model.safetensors.index.json", new_index, False))
        dropped.add(_INDEX)
    files = sorted(
        [f for f in tree.files if f.relpath not in dropped] + new_files, key=lambda f: f.relpath
    )
    tool = f"nlmr {__version__} (torch {torch.__version__}, safetensors {safetensors.__version__})"
    return Converted(
        dataclasses.replace(tree, files=tuple(files)),
        tuple(sorted(renamed)),
        tuple(sorted(renamed.values())),
        tool,
    )
