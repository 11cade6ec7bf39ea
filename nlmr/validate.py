"""``nlmr validate``: every problem in a set of cards, each at its line.

Validation never stops at the first problem and never crashes on bad input:
each file is parsed strictly (:mod:`nlmr.yamlio`), checked against its schema
(:mod:`nlmr.schemas`), then against the rules a schema cannot express (the
``_check_*`` functions below, one per rule). Every problem names its ``rule``
so tests and CI can tell them apart.
"""

from __future__ import annotations

import datetime
import fnmatch
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nlmr.cards import AnyCard, Kind, card_from_dict
from nlmr.dvcfile import DvcPointer
from nlmr.errors import CardError, format_pointer
from nlmr.languages import check_language
from nlmr.licenses import check_license
from nlmr.manifest import Manifest, is_pickle, path_problems
from nlmr.registry import (
    CARD_FILE,
    KIND_DIRS,
    MANIFEST_SUFFIX,
    POINTER_SUFFIX,
    REVISIONS_DIR,
    EntryPaths,
    entry_for_card,
)
from nlmr.schemas import check as schema_check
from nlmr.yamlio import Document, Pointer, load_path

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding.

    Attributes:
        path: the file, as displayed (relative to the working directory when below it).
        line, col: 1-based position.
        pointer: the field.
        message: what is wrong and how to fix it.
        severity: ``error`` fails validation; ``warning`` does not (unless ``--strict``).
        rule: short name of the check (``schema``, ``id-path``, ``pickle``…).
    """

    path: str
    line: int
    col: int
    pointer: Pointer
    message: str
    severity: Severity = "error"
    rule: str = "schema"

    def format(self) -> str:
        """``path:line:col: field: message`` (``warning:`` before warnings)."""
        prefix = "warning: " if self.severity == "warning" else ""
        where = f"{self.path}:{self.line}:{self.col}"
        return f"{where}: {format_pointer(self.pointer)}: {prefix}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "col": self.col,
            "field": format_pointer(self.pointer),
            "pointer": list(self.pointer),
            "message": self.message,
            "severity": self.severity,
            "rule": self.rule,
        }


@dataclass(frozen=True)
class ValidationReport:
    """All problems found, and how much was looked at.

    Attributes:
        cards: card files checked.
        files: generated files (pointers, manifests) checked beside them.
    """

    problems: tuple[Problem, ...]
    cards: int
    files: int

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")

    def ok(self, *, strict: bool = False) -> bool:
        """True when there are no errors (and no warnings, if ``strict``)."""
        return not (self.problems if strict else self.errors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok(),
            "cards": self.cards,
            "files": self.files,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "problems": [p.to_dict() for p in self.problems],
        }


def _display(path: Path) -> str:
    """The path relative to the working directory when below it, else as is."""
    text = str(path)
    if not os.path.isabs(text):
        return text
    cwd = os.getcwd()
    prefix = cwd if cwd.endswith(os.sep) else cwd + os.sep
    return text[len(prefix) :] if text.startswith(prefix) else text


def _walk_cards(top: Path) -> list[Path]:
    """``card.yaml`` files below ``top``, sorted; never descends into ``revisions/``
    (where ``dvc pull`` puts a revision's files) or hidden directories (.git, .dvc)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != REVISIONS_DIR and not d.startswith(".")]
        if CARD_FILE in filenames:
            found.append(Path(dirpath, CARD_FILE))
    return sorted(found)


class _Collector:
    """Accumulates problems for one file."""

    def __init__(self, path: str, doc: Document | None = None) -> None:
        self.path = path
        self.doc = doc
        self.problems: list[Problem] = []

    def add(
        self,
        pointer: Pointer,
        message: str,
        *,
        rule: str,
        severity: Severity = "error",
        key: bool = False,
    ) -> None:
        line, col = self.doc.locate(pointer, key=key) if self.doc else (1, 1)
        self.problems.append(Problem(self.path, line, col, pointer, message, severity, rule))

    def from_error(self, exc: CardError, rule: str) -> None:
        self.problems.append(
            Problem(self.path, exc.line, exc.col, exc.pointer, exc.problem, "error", rule)
        )


class _Index:
    """What validation needs to know about the whole registry: the ids that exist."""

    def __init__(self) -> None:
        self._roots: dict[Path, dict[Kind, dict[str, list[str]]]] = {}

    def ids(self, root: Path, kind: Kind) -> dict[str, list[str]]:
        """Case-folded id → ids present with that folding."""
        if root not in self._roots:
            table: dict[Kind, dict[str, list[str]]] = {"model": {}, "dataset": {}}
            for k, sub in KIND_DIRS.items():
                base = root / sub
                if not base.is_dir():
                    continue
                for org in os.listdir(base):
                    if not (base / org).is_dir():
                        continue
                    for name in os.listdir(base / org):
                        if (base / org / name / CARD_FILE).is_file():
                            ident = f"{org}/{name}"
                            table[k].setdefault(ident.casefold(), []).append(ident)
            self._roots[root] = table
        return self._roots[root][kind]


# ---------------------------------------------------------------------------
# Entry points


def find_cards(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[Problem]]:
    """Expand paths (files or directories) into card files.

    A directory is searched for ``card.yaml`` files; a pointer or manifest path
    selects the card of its entry. Paths that do not exist are problems.
    """
    cards: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            cards.extend(_walk_cards(p))
            continue
        if p.is_file():
            if p.name == CARD_FILE:
                cards.append(p)
            elif (
                p.name.endswith((POINTER_SUFFIX, MANIFEST_SUFFIX))
                and p.parent.name == REVISIONS_DIR
            ):
                cards.append(p.parent.parent / CARD_FILE)
            else:
                problems.append(
                    Problem(
                        _display(p),
                        1,
                        1,
                        (),
                        "not a card: nlmr validates card.yaml files and registry directories",
                        rule="layout",
                    )
                )
            continue
        problems.append(Problem(_display(p), 1, 1, (), "no such file or directory", rule="layout"))
    unique = list(dict.fromkeys(Path(os.path.abspath(c)) for c in cards))
    return unique, problems


def validate(paths: Sequence[str | os.PathLike[str]]) -> ValidationReport:
    """Validate cards and the generated files beside them.

    Args:
        paths: card files, entry directories or whole registries.

    Returns:
        The report; it lists every problem, sorted by file and line.
    """
    cards, problems = find_cards(paths)
    index = _Index()
    files = 0
    for card_path in cards:
        found, nfiles = _validate_entry(card_path, index)
        problems.extend(found)
        files += nfiles
    problems.sort(key=lambda p: (p.path, p.line, p.col))
    return ValidationReport(tuple(problems), cards=len(cards), files=files)


def load_card(path: str | os.PathLike[str]) -> AnyCard:
    """Parse, check and return one card (without cross-entry checks).

    Raises:
        CardError: the first error found; ``nlmr validate`` lists them all.
    """
    p = Path(path)
    display = _display(p)
    doc = load_path(p, display=display)
    col = _Collector(display, doc)
    _check_card_document(col, doc, entry_for_card(p))
    errors = [x for x in col.problems if x.severity == "error"]
    if errors:
        first = errors[0]
        raise CardError(
            first.path,
            first.message,
            line=first.line,
            col=first.col,
            pointer=first.pointer,
            hint=f"run `nlmr validate {display}` for all problems",
        )
    return card_from_dict(doc.data)


# ---------------------------------------------------------------------------
# One entry


def _validate_entry(card_path: Path, index: _Index) -> tuple[list[Problem], int]:
    display = _display(card_path)
    entry = entry_for_card(card_path)
    try:
        doc = load_path(card_path, display=display)
    except CardError as exc:
        col = _Collector(display)
        col.from_error(exc, "yaml")
        return col.problems, 0
    col = _Collector(display, doc)
    if entry is None:
        col.add(
            (),
            f"a card must be at <registry>/models/<org>/<name>/{CARD_FILE} or "
            f"<registry>/datasets/<org>/<name>/{CARD_FILE}",
            rule="layout",
        )
    schema_ok = _check_card_document(col, doc, entry)
    problems = col.problems
    nfiles = 0
    if entry is not None and isinstance(doc.data, Mapping):
        _check_cross_entry(col, doc.data, entry, index)
        more, n = _check_revision_files(doc, entry, schema_ok)
        problems.extend(more)
        nfiles += n
    return problems, nfiles


def _check_card_document(col: _Collector, doc: Document, entry: EntryPaths | None) -> bool:
    """Schema and single-card semantic checks. Returns True when the schema passed."""
    data = doc.data
    if not isinstance(data, Mapping):
        col.add(
            (), "a card is a YAML mapping of fields (`id: org/name`, `title: …`)", rule="schema"
        )
        return False
    kind = data.get("type")
    if kind not in ("model", "dataset"):
        kind = entry.kind if entry else "model"
    version = data.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > 1:
        col.add(
            ("schema_version",),
            f"schema_version {version} is newer than this nlmr understands (1); upgrade nlmr",
            rule="schema-version",
        )
        return False
    schema_problems = schema_check(kind, data)
    for sp in schema_problems:
        col.add(sp.pointer, sp.message, rule="schema", key=sp.at_key)
    if entry is not None:
        _check_id_path(col, data, entry)
    _check_id_form(col, data)
    _check_languages(col, data)
    _check_license(col, data)
    _check_orcids(col, data)
    _check_dates(col, data)
    _check_revisions(col, data)
    return not schema_problems


def _check_id_path(col: _Collector, data: Mapping[str, Any], entry: EntryPaths) -> None:
    ident, kind = data.get("id"), data.get("type")
    if isinstance(ident, str) and ident != entry.id:
        col.add(
            ("id",),
            f"id {ident!r} does not match the card's path ({entry.id!r}); "
            f"move the card to {KIND_DIRS[entry.kind]}/{ident}/ or fix the id",
            rule="id-path",
        )
    if kind in ("model", "dataset") and kind != entry.kind:
        col.add(
            ("type",),
            f"a {kind} card must live under {KIND_DIRS[kind]}/, not {KIND_DIRS[entry.kind]}/",
            rule="id-path",
        )


def _check_id_form(col: _Collector, data: Mapping[str, Any]) -> None:
    ident = data.get("id")
    if not isinstance(ident, str):
        return
    for part in ident.split("/"):
        if "--" in part or ".." in part:
            col.add(
                ("id",),
                f"{ident!r}: '--' and '..' are not allowed in ids (the Hugging Face "
                "cache uses '--' as its separator)",
                rule="id-form",
            )
            return
        if part.endswith(".git"):
            col.add(("id",), f"{ident!r}: a name must not end in '.git'", rule="id-form")
            return


def _check_languages(col: _Collector, data: Mapping[str, Any]) -> None:
    langs = data.get("languages")
    if not isinstance(langs, list):
        return
    for i, tag in enumerate(langs):
        if not isinstance(tag, str):
            continue
        verdict = check_language(tag)
        if verdict.error:
            col.add(("languages", i), verdict.error, rule="language")
        elif verdict.warning:
            col.add(("languages", i), verdict.warning, rule="language", severity="warning")


def _check_license(col: _Collector, data: Mapping[str, Any]) -> None:
    expr = data.get("license")
    if not isinstance(expr, str):
        return
    verdict = check_license(expr)
    if verdict.error:
        col.add(("license",), verdict.error, rule="license")
        return
    if verdict.warning:
        col.add(("license",), verdict.warning, rule="license", severity="warning")
    if verdict.refs and not data.get("license_link"):
        col.add(
            ("license",),
            f"{', '.join(verdict.refs)} needs `license_link:` with the URL of the license text",
            rule="license",
        )
    if data.get("license_name") is not None and not verdict.refs:
        col.add(
            ("license_name",),
            "license_name is only for LicenseRef- licenses (SPDX ids export under their own name)",
            rule="license",
            key=True,
        )


def _orcid_ok(orcid: str) -> bool:
    digits = orcid.replace("-", "")
    total = 0
    for ch in digits[:-1]:
        total = (total + int(ch)) * 2
    check = (12 - total % 11) % 11
    return digits[-1] == ("X" if check == 10 else str(check))


def _check_orcids(col: _Collector, data: Mapping[str, Any]) -> None:
    creators = data.get("creators")
    if not isinstance(creators, list):
        return
    for i, creator in enumerate(creators):
        orcid = creator.get("orcid") if isinstance(creator, Mapping) else None
        if isinstance(orcid, str) and len(orcid) == 19 and orcid[:4].isdigit():
            try:
                ok = _orcid_ok(orcid)
            except ValueError:
                continue  # the schema pattern reports malformed ids
            if not ok:
                col.add(
                    ("creators", i, "orcid"), f"ORCID {orcid} has a wrong check digit", rule="orcid"
                )


def _check_dates(col: _Collector, data: Mapping[str, Any]) -> None:
    candidates: list[tuple[Pointer, Any]] = [(("date_published",), data.get("date_published"))]
    revisions = data.get("revisions")
    if isinstance(revisions, list):
        for i, rev in enumerate(revisions):
            if isinstance(rev, Mapping):
                candidates.append((("revisions", i, "date"), rev.get("date")))
                yanked = rev.get("yanked")
                if isinstance(yanked, Mapping):
                    candidates.append((("revisions", i, "yanked", "date"), yanked.get("date")))
    for pointer, value in candidates:
        if not isinstance(value, str) or len(value) not in (4, 7, 10):
            continue
        parts = value.split("-")
        if not all(p.isdigit() for p in parts):
            continue
        nums = [int(p) for p in parts] + [1] * (3 - len(parts))
        try:
            datetime.date(nums[0], nums[1], nums[2])
        except ValueError:
            col.add(pointer, f"{value!r} is not a calendar date", rule="date")


def _check_revisions(col: _Collector, data: Mapping[str, Any]) -> None:
    revisions = data.get("revisions")
    if not isinstance(revisions, list):
        return
    revs = [(i, r) for i, r in enumerate(revisions) if isinstance(r, Mapping)]
    names: dict[str, int] = {}
    ids: dict[str, int] = {}
    for i, rev in revs:
        name, rid = rev.get("name"), rev.get("id")
        if isinstance(name, str):
            if name in names:
                col.add(
                    ("revisions", i, "name"),
                    f"revision name {name!r} is already used by revisions[{names[name]}]",
                    rule="revision-unique",
                )
            names.setdefault(name, i)
            if len(name) == 40 and all(c in "0123456789abcdef" for c in name):
                col.add(
                    ("revisions", i, "name"),
                    "a revision name must not look like a commit id",
                    rule="revision-unique",
                )
        if isinstance(rid, str):
            if rid in ids:
                col.add(
                    ("revisions", i, "id"),
                    f"revision id {rid} is already used by revisions[{ids[rid]}]",
                    rule="revision-unique",
                )
            ids.setdefault(rid, i)
        source = rev.get("source")
        if (
            isinstance(source, Mapping)
            and source.get("type") == "huggingface"
            and isinstance(source.get("commit"), str)
            and isinstance(rid, str)
            and source["commit"] != rid
        ):
            col.add(
                ("revisions", i, "id"),
                "a revision mirroring a Hugging Face commit has that "
                f"commit as its id ({source['commit']})",
                rule="revision-id",
            )
    defaults = [i for i, r in revs if r.get("default") is True]
    if revs and len(defaults) != 1:
        where: Pointer = (
            ("revisions", defaults[1], "default") if len(defaults) > 1 else ("revisions",)
        )
        col.add(
            where,
            f"exactly one revision must have `default: true` (found {len(defaults)})",
            rule="default-revision",
        )
    for i in defaults:
        if isinstance(revisions[i].get("yanked"), Mapping):
            col.add(
                ("revisions", i, "yanked"),
                "the default revision cannot be yanked; make another revision the default first",
                rule="default-revision",
            )


def _check_cross_entry(
    col: _Collector, data: Mapping[str, Any], entry: EntryPaths, index: _Index
) -> None:
    same = index.ids(entry.root, entry.kind).get(entry.id.casefold(), [])
    others = [x for x in same if x != entry.id]
    if others:
        col.add(
            ("id",),
            f"{entry.id!r} collides with {', '.join(repr(o) for o in others)}: ids "
            "must be unique ignoring case",
            rule="id-unique",
        )
    training = data.get("training_data")
    if isinstance(training, list):
        datasets = index.ids(entry.root, "dataset")
        for i, item in enumerate(training):
            ref = item.get("dataset") if isinstance(item, Mapping) else None
            if isinstance(ref, str) and ref not in datasets.get(ref.casefold(), []):
                near = datasets.get(ref.casefold())
                hint = (
                    f" (did you mean {near[0]!r}?)"
                    if near
                    else (
                        f"; add datasets/{ref}/card.yaml, or write {{name: {ref}}} "
                        "for an external dataset"
                    )
                )
                col.add(
                    ("training_data", i, "dataset"),
                    f"no dataset card {ref!r} in the registry{hint}",
                    rule="dataset-ref",
                )


# ---------------------------------------------------------------------------
# Generated files: pointers and manifests


def _check_revision_files(
    doc: Document, entry: EntryPaths, schema_ok: bool
) -> tuple[list[Problem], int]:
    data = doc.data
    revisions = data.get("revisions") if isinstance(data.get("revisions"), list) else []
    names = [
        r.get("name")
        for r in revisions
        if isinstance(r, Mapping) and isinstance(r.get("name"), str)
    ]
    problems: list[Problem] = []
    nfiles = 0
    card_col = _Collector(doc.path, doc)

    # One scandir per directory: entries can number in the tens of thousands.
    entry_listing = _scan(entry.dir)
    for child, is_dir in entry_listing.items():
        if child in (CARD_FILE, REVISIONS_DIR):
            continue
        card_col.add(
            (),
            f"unexpected {'directory' if is_dir else 'file'} "
            f"{_display(entry.dir / child)}: an entry holds {CARD_FILE} and {REVISIONS_DIR}/ only",
            rule="layout",
            severity="warning",
        )
    rev_listing = _scan(entry.revisions_dir) if entry_listing.get(REVISIONS_DIR) else {}
    for child, is_dir in rev_listing.items():
        if child == ".gitignore" or (is_dir and child in names):
            continue  # dvc's ignore file; a revision pulled with `dvc pull`
        owner = _generated_owner(child)
        if owner is None or owner not in names:
            card_col.add(
                ("revisions",),
                f"{_display(entry.revisions_dir / child)} belongs to no revision in the "
                "card; remove it or add the revision",
                rule="revision-files",
            )

    for i, rev in enumerate(revisions):
        if not isinstance(rev, Mapping) or not isinstance(rev.get("name"), str):
            continue
        name = rev["name"]
        ptr_path, man_path = entry.pointer(name), entry.manifest(name)
        has_ptr = rev_listing.get(ptr_path.name) is False  # present, and not a directory
        has_man = rev_listing.get(man_path.name) is False
        if has_ptr != has_man:
            missing = man_path if has_ptr else ptr_path
            card_col.add(
                ("revisions", i),
                f"revision {name!r} has "
                f"{'a pointer' if has_ptr else 'a manifest'} but no {_display(missing)}; "
                "rerun `nlmr add` for it",
                rule="revision-files",
            )
        manifest = _check_manifest(man_path, problems) if has_man else None
        nfiles += has_man + has_ptr
        if manifest is not None:
            _check_manifest_rules(card_col, problems, data, i, rev, manifest, man_path)
        if has_ptr:
            _check_pointer(ptr_path, name, manifest, problems)
    problems.extend(card_col.problems)
    return problems, nfiles


def _scan(directory: Path) -> dict[str, bool]:
    """Names in a directory, sorted, mapped to whether each is a directory."""
    try:
        with os.scandir(directory) as it:
            return {e.name: e.is_dir() for e in sorted(it, key=lambda e: e.name)}
    except OSError:
        return {}


def _generated_owner(filename: str) -> str | None:
    """The revision a generated file belongs to, by its name (None: not a generated file)."""
    for suffix in (POINTER_SUFFIX, MANIFEST_SUFFIX):
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return None


def _check_manifest(path: Path, problems: list[Problem]) -> Manifest | None:
    display = _display(path)
    try:
        doc = load_path(path, display=display)
    except CardError as exc:
        col = _Collector(display)
        col.from_error(exc, "yaml")
        problems.extend(col.problems)
        return None
    col = _Collector(display, doc)
    for sp in schema_check("manifest", doc.data):
        col.add(sp.pointer, sp.message, rule="schema", key=sp.at_key)
    if col.problems:
        problems.extend(col.problems)
        return None
    paths = [f["path"] for f in doc.data["files"]]
    for i, message in path_problems(paths):
        col.add(("files", i, "path"), message, rule="manifest-path")
    if paths != sorted(paths):
        col.add(
            ("files",),
            "files must be sorted by path (the manifest is generated: rerun "
            "`nlmr add` rather than editing it)",
            rule="manifest-path",
        )
    problems.extend(col.problems)
    return None if col.problems else Manifest.from_dict(doc.data)


def _check_manifest_rules(
    card_col: _Collector,
    problems: list[Problem],
    data: Mapping[str, Any],
    index: int,
    rev: Mapping[str, Any],
    manifest: Manifest,
    man_path: Path,
) -> None:
    where: Pointer = ("revisions", index)
    exemption = data.get("weights_exemption")
    patterns = exemption.get("patterns") if isinstance(exemption, Mapping) else None
    patterns = [p for p in patterns if isinstance(p, str)] if isinstance(patterns, list) else []
    pickles = [f.path for f in manifest.files if is_pickle(f.path)]
    unexempt = [p for p in pickles if not any(fnmatch.fnmatchcase(p, pat) for pat in patterns)]
    if unexempt:
        shown = ", ".join(unexempt[:5]) + (" …" if len(unexempt) > 5 else "")
        card_col.add(
            where,
            f"pickle-format weights are not accepted: {shown}; convert them to "
            "safetensors (`nlmr add` does), or add `weights_exemption: {reason, "
            "patterns}` for a format that is not a pickle",
            rule="pickle",
        )
    if manifest.needs_remote_code and data.get("trust_remote_code") is not True:
        why = "config.json has auto_map" if manifest.auto_map else "it ships .py files"
        card_col.add(
            where,
            f"revision {rev.get('name')!r} runs custom code ({why}): set "
            "`trust_remote_code: true` so users know before they load it",
            rule="remote-code",
        )
    source = rev.get("source")
    rid = rev.get("id")
    if (
        isinstance(source, Mapping)
        and source.get("type") in ("upload", "url")
        and isinstance(rid, str)
        and rid != manifest.derived_revision_id()
    ):
        card_col.add(
            (*where, "id"),
            f"revision id must be {manifest.derived_revision_id()}, "
            f"derived from {_display(man_path)} (the id of a non-mirrored revision is "
            "its file set's digest)",
            rule="revision-id",
        )


def _check_pointer(
    path: Path, name: str, manifest: Manifest | None, problems: list[Problem]
) -> None:
    display = _display(path)
    try:
        doc = load_path(path, display=display)
    except CardError as exc:
        col = _Collector(display)
        col.from_error(exc, "yaml")
        problems.extend(col.problems)
        return
    col = _Collector(display, doc)
    for sp in schema_check("dvc", doc.data):
        col.add(sp.pointer, sp.message, rule="dvc-pointer", key=sp.at_key)
    if not col.problems:
        pointer = DvcPointer.from_dict(doc.data)
        if pointer.path != name:
            col.add(
                ("outs", 0, "path"),
                f"path must be the revision name {name!r} (so `dvc pull` "
                f"puts the files at revisions/{name}/)",
                rule="dvc-pointer",
            )
        if manifest is not None:
            for field_name, message in pointer.disagreements(manifest):
                col.add(("outs", 0, field_name), message, rule="dvc-manifest")
    problems.extend(col.problems)


__all__ = ["Problem", "ValidationReport", "find_cards", "load_card", "validate"]
