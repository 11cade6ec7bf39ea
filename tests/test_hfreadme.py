"""Cards ↔ Hugging Face README.md."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import DATASET, MODEL, REPO

from nlmr.cards import card_from_dict
from nlmr.hfreadme import HF_MAPPED_FIELDS, card_from_readme, parse_readme, render_readme
from nlmr.registry import Registry

FULL_MODEL = copy.deepcopy(MODEL) | {
    "license": "LicenseRef-Custom-Terms",
    "license_link": "https://example.org/terms",
    "base_model": ["org/base-a", "org/base-b"],
    "training_data": [
        {"dataset": "acme/corpus"},
        {"name": "uonlp/CulturaX", "url": "https://example.org/cx"},
    ],
    "evaluation": [
        {
            "name": "Tiny BERT",
            "results": [
                {
                    "task": {"type": "token-classification", "name": "NER"},
                    "dataset": {
                        "type": "ltg/norne",
                        "name": "NorNE",
                        "config": "bokmaal",
                        "split": "test",
                    },
                    "metrics": [{"type": "f1", "value": 0.91, "name": "F1", "verified": False}],
                    "source": {"name": "paper", "url": "https://example.org/paper"},
                }
            ],
        }
    ],
    "trust_remote_code": True,
    "citation": {"bibtex": "@misc{x,\n  title={X}\n}", "doi": "10.1234/abc.5"},
    "revisions": [
        {
            "name": "main",
            "id": "a" * 40,
            "default": True,
            "date": "2024-01-02",
            "source": {"type": "huggingface", "repo": "up/tiny", "commit": "a" * 40},
        }
    ],
    "links": {"paper": "https://example.org/p", "upstream": "https://huggingface.co/up/tiny"},
}
FULL_DATASET = copy.deepcopy(DATASET) | {
    "description": "Multi\nline.",
    "task_categories": ["text-generation", "fill-mask"],
    "size": {"documents": 12345, "tokens": 10**9},
    "modalities": ["text"],
    "formats": ["json", "parquet"],
    "configs": [
        {
            "config_name": "nb",
            "default": True,
            "data_files": [{"split": "train", "path": "nb/train-*.jsonl.zst"}],
        }
    ],
}


@pytest.mark.parametrize(
    "data",
    [MODEL, FULL_MODEL, DATASET, FULL_DATASET],
    ids=["model", "full-model", "dataset", "full-dataset"],
)
def test_card_readme_card_is_lossless(data: dict) -> None:
    card = card_from_dict(data)
    text = render_readme(card)
    assert card_from_readme(text) == card
    # and every HF-mapped field is readable by huggingface_hub in the Hub's own vocabulary
    front = yaml.safe_load(text.split("---\n")[1])
    if card.type == "model":
        assert front["library_name"] == card.framework and front["pipeline_tag"] == card.task
    assert front["language"] == list(card.languages)


def test_hf_mapped_fields_use_hub_vocabulary() -> None:
    card = card_from_dict(FULL_MODEL)
    front = yaml.safe_load(render_readme(card).split("---\n")[1])
    assert front["license"] == "other" and front["license_name"] == "custom-terms"
    assert front["license_link"] == "https://example.org/terms"
    assert front["base_model"] == ["org/base-a", "org/base-b"]
    assert front["datasets"] == ["acme/corpus", "uonlp/CulturaX"]
    assert front["model-index"] == FULL_MODEL["evaluation"]
    nlmr_only = set(front["nlmr"])
    assert not ({"languages", "framework", "task", "tags", "base_model", "evaluation"} & nlmr_only)
    assert {"languages", "license", "framework", "task"} <= HF_MAPPED_FIELDS


def test_spdx_license_exports_as_hub_id() -> None:
    front = yaml.safe_load(render_readme(card_from_dict(MODEL)).split("---\n")[1])
    assert front["license"] == "apache-2.0" and "license" not in front["nlmr"]


def test_dataset_exports_configs_and_size_category() -> None:
    front = yaml.safe_load(render_readme(card_from_dict(FULL_DATASET)).split("---\n")[1])
    assert front["configs"] == FULL_DATASET["configs"]
    assert front["size_categories"] == ["10K<n<100K"]
    assert front["pretty_name"] == "Corpus"


def test_import_foreign_readme() -> None:
    text = """---
language:
- 'no'
- nb
license: cc-by-4.0
library_name: transformers
pipeline_tag: fill-mask
datasets:
- NbAiLab/NCC
tags: [norwegian]
---

# NorSomething base

A Norwegian encoder trained on lots of text.
It is quite good.

## Usage

Load it.
"""
    data = parse_readme(text, entry_id="org/norsomething")
    assert data["id"] == "org/norsomething" and data["type"] == "model"
    assert data["title"] == "NorSomething base"
    assert data["summary"] == "A Norwegian encoder trained on lots of text. It is quite good."
    assert data["description"].startswith("## Usage")
    assert data["languages"] == ["no", "nb"] and data["license"] == "CC-BY-4.0"
    assert data["framework"] == "transformers" and data["task"] == "fill-mask"
    assert data["training_data"] == [{"name": "NbAiLab/NCC"}]


def test_import_other_license() -> None:
    data = parse_readme(
        "---\nlicense: other\nlicense_name: my-terms\nlicense_link: https://x.org/t\n---\n# T\n",
        entry_id="a/b",
    )
    assert data["license"] == "LicenseRef-my-terms" and data["license_link"] == "https://x.org/t"
    assert "license_name" not in data


def test_shipped_cards_round_trip() -> None:
    reg = Registry(REPO / "registry")
    for entry in reg.entries():
        card = reg.load(entry.id)
        assert card_from_readme(render_readme(card)) == card, entry.id
