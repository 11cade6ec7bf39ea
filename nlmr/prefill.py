"""Card fields read off a source: README front matter, config.json, safetensors headers.

Nothing here loads a tensor: parameter counts come from the JSON headers of
safetensors files (8-byte length, then the header).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nlmr.cards import Kind
from nlmr.sources import SourceTree

#: Architecture class-name suffix → pipeline tag.
_TASK_BY_SUFFIX = (
    ("ForMaskedLM", "fill-mask"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForConditionalGeneration", "text2text-generation"),
    ("ForSeq2SeqLM", "text2text-generation"),
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMultipleChoice", "multiple-choice"),
    ("ForCTC", "automatic-speech-recognition"),
    ("ForSpeechSeq2Seq", "automatic-speech-recognition"),
    ("Model", "feature-extraction"),
)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "vocab.json",
)
MAX_HEADER = 100 * 1024 * 1024


def read_json(path: Path) -> dict[str, Any] | None:
    """A small JSON object file, or None when absent or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def safetensors_parameters(path: Path) -> int:
    """Number of parameters in a safetensors file, from its header alone.

    Raises:
        ValueError: the file is not a safetensors file.
    """
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: too short for safetensors")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER:
            raise ValueError(f"{path}: safetensors header of {length} bytes")
        header = json.loads(fh.read(length))
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in info["shape"]:
            count *= int(dim)
        total += count
    return total


def count_parameters(paths: Iterable[Path]) -> int | None:
    """Parameters across safetensors files (None when there are none).

    The paths are taken to be safetensors files: a cache snapshot's blobs have no suffix.
    """
    found = False
    total = 0
    for p in paths:
        total += safetensors_parameters(p)
        found = True
    return total if found else None


def task_for(architecture: str) -> str | None:
    for suffix, task in _TASK_BY_SUFFIX:
        if architecture.endswith(suffix):
            return task
    return None


def auto_map(tree: SourceTree) -> dict[str, Any] | None:
    """config.json's ``auto_map`` (the model needs custom code), if any."""
    cfg = tree.get("config.json")
    data = read_json(cfg.path) if cfg else None
    value = data.get("auto_map") if data else None
    return value if isinstance(value, dict) and value else None


def detect_kind(tree: SourceTree) -> Kind:
    """``model`` when the tree has a config.json or weights, else ``dataset``."""
    if tree.kind:
        return tree.kind
    names = {f.relpath for f in tree.files}
    weights = any(
        n.endswith((".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")) for n in names
    )
    return "model" if "config.json" in names or weights else "dataset"


def prefill(tree: SourceTree, kind: Kind) -> dict[str, Any]:
    """Card fields the source tells us (never overriding what a contributor wrote).

    Returns:
        A partial card: README front matter fields, and for models architecture, framework,
        task, parameters, tokenizer and trust_remote_code from config.json and weights.
    """
    from nlmr.hfreadme import parse_readme

    fields: dict[str, Any] = {}
    readme = tree.get("README.md")
    if readme is not None:
        text = readme.path.read_text(encoding="utf-8", errors="replace")
        fields.update(
            {
                k: v
                for k, v in parse_readme(text, kind=kind).items()
                if k not in ("schema_version", "type", "id")
            }
        )
    if kind != "model":
        return fields
    names = {f.relpath for f in tree.files}
    config = read_json(tree.get("config.json").path) if "config.json" in names else None  # type: ignore[union-attr]
    if config:
        archs = config.get("architectures")
        if isinstance(archs, list) and archs and isinstance(archs[0], str):
            fields.setdefault("architecture", archs[0])
            task = task_for(archs[0])
            if task:
                fields.setdefault("task", task)
        fields.setdefault("framework", "transformers")
    if {"modules.json", "config_sentence_transformers.json"} & names:
        fields["framework"] = "sentence-transformers"
        fields.setdefault("task", "sentence-similarity")
    from nlmr.sources import SourceError

    weights = [f for f in tree.files if f.relpath.endswith(".safetensors")]
    try:
        params = count_parameters(f.path for f in weights)
    except ValueError as exc:  # a file named .safetensors that is not one: loading would fail
        raise SourceError(
            f"not a valid safetensors file: {exc}",
            hint="re-save the weights with save_pretrained or safetensors.torch.save_file",
        ) from exc
    if params:
        fields.setdefault("parameters", params)
    fields["tokenizer"] = any(n.rsplit("/", 1)[-1] in TOKENIZER_FILES for n in names)
    if auto_map(tree) or any(n.endswith(".py") for n in names):
        fields["trust_remote_code"] = True
    return fields
