"""Cards ↔ Hugging Face README.md (YAML front matter + Markdown body).

Export writes the front matter in the Hub's vocabulary (``language``,
``license``/``license_name``/``license_link``, ``library_name``,
``pipeline_tag``, ``tags``, ``datasets``, ``base_model``, ``model-index``;
``task_categories``, ``configs``, ``pretty_name`` for datasets) and puts every
card field the Hub cannot express under an ``nlmr:`` key, so a README nlmr
wrote reads back into the very same card. A README written anywhere else
reads into as much of a card as its front matter and body allow.

huggingface_hub's ``ModelCard``/``DatasetCard`` do the YAML side.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nlmr.cards import AnyCard, Kind, card_from_dict
from nlmr.licenses import from_hf as license_from_hf
from nlmr.licenses import to_hf as license_to_hf

_DESC_START = "<!-- nlmr:description -->"
_DESC_END = "<!-- /nlmr:description -->"

#: Card fields that have a Hugging Face front-matter counterpart.
HF_MAPPED_FIELDS = frozenset(
    {
        "languages",
        "license",
        "license_name",
        "license_link",
        "tags",
        "framework",
        "task",
        "base_model",
        "training_data",
        "evaluation",
        "task_categories",
        "configs",
        "title",
    }
)


def _hf_fields(card: Mapping[str, Any]) -> dict[str, Any]:
    """Front-matter fields (Hub vocabulary) for a card given as plain data."""
    hf: dict[str, Any] = {}
    if card.get("languages"):
        hf["language"] = list(card["languages"])
    if card.get("license"):
        hf.update(
            license_to_hf(card["license"], card.get("license_name"), card.get("license_link"))
        )
    if card.get("tags"):
        hf["tags"] = list(card["tags"])
    if card.get("type") == "model":
        if card.get("framework"):
            hf["library_name"] = card["framework"]
        if card.get("task"):
            hf["pipeline_tag"] = card["task"]
        if card.get("base_model"):
            hf["base_model"] = card["base_model"]
        names = [t.get("dataset") or t.get("name") for t in card.get("training_data") or ()]
        if names:
            hf["datasets"] = names
        if card.get("evaluation"):
            hf["model-index"] = list(card["evaluation"])
    else:
        if card.get("title"):
            hf["pretty_name"] = card["title"]
        if card.get("task_categories"):
            hf["task_categories"] = list(card["task_categories"])
        if card.get("configs"):
            hf["configs"] = list(card["configs"])
        documents = (card.get("size") or {}).get("documents")
        if documents is not None:
            hf["size_categories"] = [_size_category(documents)]
    return hf


def _fields_from_hf(front: Mapping[str, Any], kind: Kind) -> dict[str, Any]:
    """Card fields recoverable from Hub front matter alone."""
    out: dict[str, Any] = {}
    lang = front.get("language")
    if lang:
        out["languages"] = [lang] if isinstance(lang, str) else list(lang)
    lic = front.get("license")
    if isinstance(lic, list):  # the Hub allows a list; take the first
        lic = lic[0] if lic else None
    spdx, name, link = license_from_hf(lic, front.get("license_name"), front.get("license_link"))
    if spdx:
        out["license"] = spdx
    if name:
        out["license_name"] = name
    if link:
        out["license_link"] = link
    if front.get("tags"):
        out["tags"] = list(front["tags"])
    if kind == "model":
        for hf_key, key in (
            ("library_name", "framework"),
            ("pipeline_tag", "task"),
            ("base_model", "base_model"),
        ):
            if front.get(hf_key):
                out[key] = front[hf_key]
        datasets = front.get("datasets")
        if datasets:
            out["training_data"] = [
                {"name": d} for d in ([datasets] if isinstance(datasets, str) else datasets)
            ]
        if front.get("model-index"):
            out["evaluation"] = list(front["model-index"])
    else:
        if front.get("pretty_name"):
            out["title"] = front["pretty_name"]
        if front.get("task_categories"):
            out["task_categories"] = list(front["task_categories"])
        if front.get("configs"):
            out["configs"] = list(front["configs"])
    return out


def _size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for a row count."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
        (10_000_000_000, "1B<n<10B"),
        (100_000_000_000, "10B<n<100B"),
        (1_000_000_000_000, "100B<n<1T"),
    ]
    for bound, label in bounds:
        if n < bound:
            return label
    return "n>1T"


def render_readme(card: AnyCard) -> str:
    """The Hugging Face README.md for a card.

    Returns:
        Front matter + body. Reading it back with :func:`parse_readme` gives the same card.
    """
    from huggingface_hub import DatasetCardData, ModelCardData

    data = card.to_dict()
    hf = _hf_fields(data)
    recovered = _fields_from_hf(hf, card.type)
    # Everything the Hub's vocabulary does not carry back exactly goes under `nlmr:`.
    nlmr_block = {k: v for k, v in data.items() if recovered.get(k) != v}
    for key in ("title", "summary", "description"):  # the body carries these
        nlmr_block.pop(key, None)
    card_data_cls = ModelCardData if card.type == "model" else DatasetCardData
    card_data = card_data_cls(**hf, nlmr=nlmr_block)
    body = [f"# {card.title}", "", card.summary.strip(), ""]
    body += [_DESC_START, (card.description or "").strip(), _DESC_END, ""]
    if card.citation and card.citation.bibtex:
        body += ["## Citation", "", "```bibtex", card.citation.bibtex.strip(), "```", ""]
    if card.citation and card.citation.doi:
        body += [f"DOI: [{card.citation.doi}](https://doi.org/{card.citation.doi})", ""]
    return f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(body)


def parse_readme(
    text: str, *, kind: Kind | None = None, entry_id: str | None = None
) -> dict[str, Any]:
    """Card data (a plain dict, not yet validated) from a Hugging Face README.

    Args:
        text: the README.md content.
        kind: ``model`` or ``dataset``; taken from the README's ``nlmr:`` block when omitted,
            else ``model``.
        entry_id: the card id to use when the README does not carry one.

    Returns:
        Card fields: validate them (``nlmr validate``) before use; a README from
        elsewhere lacks fields the Hub does not know (creators, maintainers…).
    """
    from huggingface_hub import RepoCard

    repo_card = RepoCard(text, ignore_metadata_errors=True)
    front: dict[str, Any] = repo_card.data.to_dict() if repo_card.data else {}  # type: ignore[no-untyped-call]
    raw_block = front.get("nlmr")
    nlmr_block: Mapping[str, Any] = raw_block if isinstance(raw_block, Mapping) else {}
    kind_value = kind or nlmr_block.get("type") or "model"
    resolved_kind: Kind = "dataset" if kind_value == "dataset" else "model"
    fields = _fields_from_hf(front, resolved_kind)
    title, summary, description = _split_body(repo_card.text)
    out: dict[str, Any] = {"schema_version": 1}
    if entry_id:
        out["id"] = entry_id
    out["type"] = resolved_kind
    if title:
        out["title"] = title
    if summary:
        out["summary"] = summary
    if description:
        out["description"] = description
    out.update(fields)
    out.update(nlmr_block)
    if entry_id:
        out["id"] = entry_id
    return out


def _split_body(body: str) -> tuple[str | None, str | None, str | None]:
    """Title (first H1), summary (first paragraph after it) and description."""
    text = body.strip("\n")
    title = None
    m = re.search(r"^# +(.+?)\s*$", text, flags=re.M)
    if m:
        title = m.group(1).strip()
        text = text[m.end() :].lstrip("\n")
    if _DESC_START in text and _DESC_END in text:
        before, _, rest = text.partition(_DESC_START)
        desc, _, _ = rest.partition(_DESC_END)
        return title, before.strip() or None, desc.strip("\n") or None
    paragraphs = re.split(r"\n\s*\n", text, maxsplit=1)
    first = (
        paragraphs[0].strip()
        if paragraphs and not paragraphs[0].lstrip().startswith(("#", "```", "|", "<", "-", "*"))
        else ""
    )
    summary = " ".join(first.split())[:300] if first else None
    description = (paragraphs[1] if first and len(paragraphs) > 1 else text).strip() or None
    return title, summary, description


def card_from_readme(
    text: str, *, kind: Kind | None = None, entry_id: str | None = None
) -> AnyCard:
    """Like :func:`parse_readme`, but returns the typed card (the data must be complete).

    Raises:
        ValueError / KeyError / TypeError: the README lacks fields a card requires.
    """
    return card_from_dict(parse_readme(text, kind=kind, entry_id=entry_id))
