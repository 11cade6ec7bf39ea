"""Plan, then act: what a sync would add, switch and remove, from the registry's view and the
target's catalogue alone (never from re-hashing the tree)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from nlmr.catalogue import Catalogue, CatalogueEntry
from nlmr.sync.view import RegistryView, WantedEntry, WantedRevision
from nlmr.target import Target


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def iso(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc
    )


@dataclass(frozen=True)
class Addition:
    """A revision to publish."""

    kind: str
    id: str
    revision: WantedRevision
    bytes: int  # of the files the target keeps
    files: int
    new_bytes: int  # of those, bytes whose content the entry does not hold yet

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.revision.name}"


@dataclass(frozen=True)
class DefaultSwitch:
    kind: str
    id: str
    old: str | None
    new: str


@dataclass(frozen=True)
class Removal:
    """A published revision no longer wanted: removed once ``due``."""

    kind: str
    id: str
    name: str
    rev_id: str
    since: str
    due: bool
    bytes: int
    reason: str

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.name}"


@dataclass(frozen=True)
class Conflict:
    kind: str
    id: str
    message: str


@dataclass
class Plan:
    """Everything a sync will do. ``entries`` holds the registry's summary per key so the
    engine can refresh catalogue metadata."""

    additions: list[Addition] = field(default_factory=list)
    switches: list[DefaultSwitch] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # removals cancelled (wanted again)
    metadata: list[str] = field(default_factory=list)  # entries whose card summary changed
    warnings: list[str] = field(default_factory=list)
    unchanged: int = 0  # published revisions left as they are
    wanted: dict[str, WantedEntry] = field(default_factory=dict)

    @property
    def due_removals(self) -> list[Removal]:
        return [r for r in self.removals if r.due]

    @property
    def changes_catalogue(self) -> bool:
        return bool(
            self.additions
            or self.switches
            or self.due_removals
            or self.restored
            or self.metadata
            or any(r.since == "now" for r in self.removals)  # a removal timer starts
        )

    @property
    def empty(self) -> bool:
        return not self.changes_catalogue

    def to_dict(self) -> dict[str, Any]:
        return {
            "add": [
                {
                    "kind": a.kind,
                    "id": a.id,
                    "revision": a.revision.name,
                    "revision_id": a.revision.id,
                    "files": a.files,
                    "bytes": a.bytes,
                    "transfer_bytes": a.new_bytes,
                }
                for a in self.additions
            ],
            "switch_default": [
                {"kind": s.kind, "id": s.id, "from": s.old, "to": s.new} for s in self.switches
            ],
            "remove": [
                {
                    "kind": r.kind,
                    "id": r.id,
                    "revision": r.name,
                    "revision_id": r.rev_id,
                    "bytes": r.bytes,
                    "since": r.since,
                    "due": r.due,
                    "reason": r.reason,
                }
                for r in self.removals
            ],
            "conflicts": [
                {"kind": c.kind, "id": c.id, "message": c.message} for c in self.conflicts
            ],
            "unchanged": self.unchanged,
            "warnings": list(self.warnings),
        }


def _wanted_revisions(entry: WantedEntry, target: Target) -> list[WantedRevision]:
    stored = [r for r in entry.revisions if r.manifest and not r.yanked]
    if target.select.revisions == "default":
        return [r for r in stored if r.default]
    return stored


def make_plan(
    view: RegistryView,
    catalogue: Catalogue,
    target: Target,
    *,
    now: datetime.datetime | None = None,
    load_files: Any = None,
) -> Plan:
    """Compare what the registry wants on ``target`` with what its catalogue records.

    Args:
        load_files: ``(WantedRevision) -> list[ManifestFile]`` after the target's file filter;
            called only for revisions to add (their sizes go into the plan).
    """
    now = now or now_utc()
    plan = Plan()
    wanted_keys: set[str] = set()
    for entry in view.entries:
        key = f"{entry.kind}:{entry.id}"
        revs = _wanted_revisions(entry, target)
        if not revs:
            continue
        wanted_keys.add(key)
        plan.wanted[key] = entry
        have = catalogue.entries.get(key)
        _plan_entry(plan, entry, revs, have, target, now, load_files)
    for key, have in catalogue.entries.items():
        if key not in wanted_keys:
            for rev in have.revisions:
                _plan_removal(
                    plan,
                    have,
                    rev.name,
                    "the entry left the registry or the selection",
                    target,
                    now,
                )
    return plan


def _plan_entry(
    plan: Plan,
    entry: WantedEntry,
    revs: list[WantedRevision],
    have: CatalogueEntry | None,
    target: Target,
    now: datetime.datetime,
    load_files: Any,
) -> None:
    names = {r.name for r in revs}
    held_blobs: set[str] = set()
    if have is not None:
        for held in have.revisions:
            held_blobs.update(f.sha256 for f in held.files)
        if (
            have.title,
            have.summary,
            have.license,
            tuple(have.languages),
            tuple(have.tags),
            have.framework,
        ) != (
            entry.title,
            entry.summary,
            entry.license,
            entry.languages,
            entry.tags,
            entry.framework,
        ):
            plan.metadata.append(f"{entry.kind}:{entry.id}")
    for rev in revs:
        published = have.revision(rev.name) if have else None
        if published is not None:
            if published.id != rev.id:
                plan.conflicts.append(
                    Conflict(
                        entry.kind,
                        entry.id,
                        f"{entry.id}@{rev.name}: the registry now says id {rev.id[:12]}…, the "
                        f"target published {published.id[:12]}…; a published revision never "
                        "changes: add the new files as a new revision name",
                    )
                )
                continue
            if published.removal_since:
                plan.restored.append(f"{entry.id}@{rev.name}")
            plan.unchanged += 1
            continue
        files = list(load_files(entry, rev)) if load_files else []
        if load_files and not files:
            plan.warnings.append(
                f"{entry.id}@{rev.name}: the target's file filter keeps no file; not published"
            )
            continue
        new = sum(
            f.size for f in {f.sha256: f for f in files if f.sha256 not in held_blobs}.values()
        )
        plan.additions.append(
            Addition(entry.kind, entry.id, rev, sum(f.size for f in files), len(files), new)
        )
        held_blobs.update(f.sha256 for f in files)
    default = entry.default
    if default is not None and default.name in names:
        old = have.default_revision if have else None
        blocked = any(c.id == entry.id and f"@{default.name}:" in c.message for c in plan.conflicts)
        if old != default.name and not blocked:
            plan.switches.append(DefaultSwitch(entry.kind, entry.id, old, default.name))
    if have is not None:
        for held in have.revisions:
            if held.name in names:
                continue
            listed = [r for r in entry.revisions if r.name == held.name]
            if any(r.yanked for r in listed):
                reason = "yanked"
            elif listed and target.select.revisions == "default":
                reason = "no longer the default revision"
            else:
                reason = "the revision left the registry"
            _plan_removal(plan, have, held.name, reason, target, now)


def _plan_removal(
    plan: Plan,
    have: CatalogueEntry,
    name: str,
    reason: str,
    target: Target,
    now: datetime.datetime,
) -> None:
    rev = have.revision(name)
    assert rev is not None
    since = rev.removal_since
    if since is None:
        due = target.grace <= 0
        plan.removals.append(
            Removal(have.kind, have.id, name, rev.id, "now", due, rev.size, reason)
        )
        return
    age = (now - parse_iso(since)).total_seconds()
    plan.removals.append(
        Removal(have.kind, have.id, name, rev.id, since, age >= target.grace, rev.size, reason)
    )


def summary_lines(plan: Plan, human_bytes: Any) -> list[str]:
    """One line per planned change, for ``--dry-run`` and the report."""
    out = []
    for a in plan.additions:
        out.append(
            f"add     {a.ref}  {a.files} files, {human_bytes(a.bytes)}"
            f" ({human_bytes(a.new_bytes)} to transfer)"
        )
    for s in plan.switches:
        out.append(f"default {s.id}: {s.old or '(none)'} -> {s.new}")
    for r in plan.removals:
        when = "now" if r.due else f"after the grace period (pending since {r.since})"
        out.append(f"remove  {r.ref}  {human_bytes(r.bytes)}: {r.reason}; {when}")
    for c in plan.conflicts:
        out.append(f"conflict {c.message}")
    return out
