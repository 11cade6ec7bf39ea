"""Cards: the typed form of ``card.yaml``.

A card is data a contributor writes; :mod:`nlmr.validate` checks it, and
:func:`card_from_dict` turns checked data into these frozen dataclasses with
languages and licenses normalised. Layout on disk is :mod:`nlmr.registry`'s
business, the Hugging Face README form is :mod:`nlmr.hfreadme`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from nlmr import _dataclass
from nlmr.languages import normalize_languages
from nlmr.licenses import check_license

Kind = Literal["model", "dataset"]


@dataclass(frozen=True, kw_only=True)
class Creator:
    """A person or organisation credited for the entry."""

    name: str
    orcid: str | None = None
    affiliation: str | None = None


@dataclass(frozen=True, kw_only=True)
class Source:
    """Where a revision's files came from: ``huggingface``, ``upload`` or ``url``."""

    type: Literal["huggingface", "upload", "url"]
    repo: str | None = None
    commit: str | None = None
    url: str | None = None
    sha256: str | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Yanked:
    reason: str
    date: str | None = None


@dataclass(frozen=True, kw_only=True)
class Deprecated:
    reason: str
    replaced_by: str | None = None


@dataclass(frozen=True, kw_only=True)
class Conversion:
    """Pickle weights that ``nlmr add`` converted to safetensors (the pickles are not uploaded)."""

    pickles: tuple[str, ...]
    safetensors: tuple[str, ...]
    tool: str


@dataclass(frozen=True, kw_only=True)
class Revision:
    """One revision of an entry. Stored revisions have a pointer and a manifest beside the card."""

    name: str
    id: str
    date: str | None = None
    default: bool = False
    source: Source | None = None
    converted: Conversion | None = None
    yanked: Yanked | None = None
    deprecated: Deprecated | None = None


@dataclass(frozen=True, kw_only=True)
class Links:
    homepage: str | None = None
    paper: str | None = None
    code: str | None = None
    upstream: str | None = None


@dataclass(frozen=True, kw_only=True)
class Citation:
    bibtex: str | None = None
    doi: str | None = None


@dataclass(frozen=True, kw_only=True)
class Exemption:
    """Permission for files in a format nlmr otherwise rejects (pickles)."""

    reason: str
    patterns: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Card:
    """Fields common to model and dataset cards (see schemas/common.schema.json)."""

    schema_version: int = 1
    id: str
    type: Kind
    title: str
    summary: str
    description: str | None = None
    languages: tuple[str, ...]
    license: str
    license_name: str | None = None
    license_link: str | None = None
    creators: tuple[Creator, ...]
    maintainers: tuple[str, ...]
    date_published: str | None = None
    tags: tuple[str, ...] = ()
    links: Links | None = None
    citation: Citation | None = None
    revisions: tuple[Revision, ...] = ()
    weights_exemption: Exemption | None = None

    @property
    def default_revision(self) -> Revision | None:
        """The revision ``org/name`` resolves to, or None for a catalogued-only entry."""
        return next((r for r in self.revisions if r.default), None)

    def to_dict(self) -> dict[str, Any]:
        """The card as plain data, in schema field order (what ``card.yaml`` holds)."""
        return _dataclass.to_dict(self)


@dataclass(frozen=True, kw_only=True)
class TrainingData:
    """``dataset`` names a dataset card in the registry; ``name``/``url`` anything else."""

    dataset: str | None = None
    name: str | None = None
    url: str | None = None


@dataclass(frozen=True, kw_only=True)
class Algorithm:
    name: str
    tool: str | None = None
    version: str | None = None


@dataclass(frozen=True, kw_only=True)
class Preprocessing:
    lemmatized: bool | None = None
    tagger: str | None = None
    tagset: str | None = None
    case_preserved: bool | None = None


@dataclass(frozen=True, kw_only=True)
class Embeddings:
    """Static word embeddings (NLPL Vectors Repository legacy)."""

    algorithm: Algorithm
    dimensions: int
    vocabulary_size: int | None = None
    preprocessing: Preprocessing | None = None
    legacy_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class ModelCard(Card):
    """A model card (schemas/model-card.schema.json)."""

    type: Literal["model"] = "model"
    architecture: str | None = None
    framework: str | None = None
    task: str | None = None
    parameters: int | None = None
    tokenizer: bool | None = None
    base_model: str | tuple[str, ...] | None = None
    training_data: tuple[TrainingData, ...] = ()
    evaluation: tuple[Mapping[str, Any], ...] = ()
    trust_remote_code: bool | None = None
    embeddings: Embeddings | None = None


@dataclass(frozen=True, kw_only=True)
class DatasetSize:
    bytes: int | None = None
    documents: int | None = None
    tokens: int | None = None


@dataclass(frozen=True, kw_only=True)
class DatasetCard(Card):
    """A dataset card (schemas/dataset-card.schema.json)."""

    type: Literal["dataset"] = "dataset"
    task_categories: tuple[str, ...] = ()
    size: DatasetSize | None = None
    modalities: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    configs: tuple[Mapping[str, Any], ...] = ()


AnyCard = ModelCard | DatasetCard


def card_from_dict(data: Mapping[str, Any]) -> AnyCard:
    """Build a card from schema-valid data, normalising languages and license.

    Raises:
        ValueError: ``type`` is neither ``model`` nor ``dataset``.
    """
    kind = data.get("type")
    cls: type[AnyCard]
    if kind == "model":
        cls = ModelCard
    elif kind == "dataset":
        cls = DatasetCard
    else:
        raise ValueError(f"card type must be 'model' or 'dataset', not {kind!r}")
    card = _dataclass.from_dict(cls, data)
    license_check = check_license(card.license)
    return replace(
        card,
        summary=card.summary.strip(),
        description=card.description.strip() if card.description else None,
        languages=tuple(normalize_languages(list(card.languages))),
        license=license_check.normalized or card.license,
    )


def card_to_yaml(data: Mapping[str, Any]) -> str:
    """``card.yaml`` text for card data: field order kept, Markdown as ``|`` blocks."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    text: str = yaml.dump(
        dict(data),
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )
    return text
