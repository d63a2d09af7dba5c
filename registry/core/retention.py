"""Retention: remove old versions without rewriting history (``pmr gc``, ``pmr delete-model``).

A removed version leaves a ``deleted`` event (who, when, why, which versions) in the model's log, and its
manifest stays where it is: version numbers are never reused, the hash chain and ``verify`` stay whole, and
``pmr history`` / ``pmr show models:/NAME/V`` still say what the version was. What goes is its bytes: the
artifact and the training-data snapshot, each deleted only when no surviving version of any model names it.
Gate reports are small and are the audit's evidence: they stay.

Never removed by ``gc``: a version in production or staging, one carrying an alias, any version that was ever
in production (a rollback, or several, may need it), and the parents (``lineage.parent_version``, followed up
the chain) of all of those. ``keep_last`` keeps the highest version numbers, counted over every version ever
registered, so a retry after a crash picks the same versions, never more.

Safe to retry at any point: the event is the decision (a retry finds the versions already deleted and plans
nothing new), and the blob sweep is recomputed from the manifests each time. Blobs written within the grace
period are left for a later run: registration rewrites a small blob it reuses and marks a large one
(``blobs/uses/<hex>``, see ``transfer``), so one that a write in flight just named is always young. A
registration that reused a blob looks at it again once its manifest is published and sends it again if a sweep
took it in between. Unfinished multipart uploads older than the grace period are aborted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from prefect_model_registry.registry.core import keys, transfer, versions
from prefect_model_registry.registry.core.checks import check_text
from prefect_model_registry.registry.core.drafts import Draft
from prefect_model_registry.registry.core.identity import resolve_actor
from prefect_model_registry.registry.core.log import ModelLog
from prefect_model_registry.registry.errors import InvalidMetadata, RegistryError
from prefect_model_registry.registry.models import ModelState, ModelVersion
from prefect_model_registry.registry.names import check_model_name
from prefect_model_registry.registry.store.base import ObjectStore


class Registry(Protocol):
    """What retention reads through a :class:`~prefect_model_registry.registry.Registry` (which calls it)."""

    store: ObjectStore

    def models(self) -> list[str]:
        """Names of all registered models."""
        ...

    def latest_version(self, name: str) -> int:
        """The highest version number of ``name``."""
        ...

    def versions(self, name: str, *, limit: int | None = None) -> list[ModelVersion]:
        """Manifests of ``name``, newest first."""
        ...


#: Blobs younger than this may belong to a write in flight: the sweep leaves them for a later run.
GRACE_S = 3600.0


@dataclass
class GcResult:
    """What a gc (or model deletion) did, or would do on a dry run."""

    model: str
    applied: bool
    deleted: list[int] = field(default_factory=list)
    kept: dict[int, str] = field(default_factory=dict)
    event_seq: int | None = None
    blobs_deleted: list[str] = field(default_factory=list)
    blobs_young: list[str] = field(default_factory=list)
    #: Multipart uploads nobody finished within the grace period (aborted, or to be aborted on a dry run).
    uploads_aborted: list[str] = field(default_factory=list)
    #: Why the blob sweep stopped (the versions are deleted all the same; run gc again to finish it).
    sweep_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (what ``pmr gc --json`` prints)."""
        return {
            "model": self.model,
            "applied": self.applied,
            "deleted": self.deleted,
            "kept": {str(v): why for v, why in sorted(self.kept.items())},
            "event_seq": self.event_seq,
            "blobs_deleted": self.blobs_deleted,
            "blobs_kept_young": self.blobs_young,
            "uploads_aborted": self.uploads_aborted,
            "sweep_error": self.sweep_error,
        }


def parse_age(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``45s`` or ``2w`` as a duration.

    Raises:
        InvalidMetadata: anything else.

    """
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    body, unit = text[:-1], text[-1:]
    if unit not in units or not body.isascii() or not body.isdigit():
        raise InvalidMetadata(f"age must look like 90d, 12h, 30m, 45s or 2w, not {text!r}")
    return timedelta(seconds=int(body) * units[unit])


def protected(state: ModelState, manifest: Callable[[int], ModelVersion | None]) -> dict[int, str]:
    """The versions ``gc`` must keep, each with why.

    Args:
        state: the model's current state.
        manifest: reads a version's manifest (None when unreadable), for its parent.

    """
    why: dict[int, str] = {}
    for version, stage in state.stages.items():
        if stage in ("production", "staging"):
            why[version] = f"in {stage}"
    for alias, version in sorted(state.aliases.items()):
        why.setdefault(version, f"alias {alias!r}")
    # Not the rollback stack (production_history): a version archived or rolled back out of production leaves it.
    for version in state.ever_in_production:
        why.setdefault(version, "was in production (rollback target)")
    todo = list(why)
    while todo:  # parents of protected versions, up the chain
        mv = manifest(todo.pop())
        parent = mv.lineage.parent_version if mv is not None else None
        if parent is not None and parent not in why and parent not in state.deleted:
            why[parent] = f"parent of v{mv.version}" if mv is not None else "parent"
            todo.append(parent)
    return why


def _manifests(reg: Registry, name: str) -> Callable[[int], ModelVersion | None]:
    cache: dict[int, ModelVersion | None] = {}

    def read(version: int) -> ModelVersion | None:
        if version not in cache:
            try:
                cache[version] = versions.read_manifest(reg.store, name, version)
            except RegistryError:
                cache[version] = None
        return cache[version]

    return read


def gc(
    reg: Registry,
    name: str,
    *,
    keep_last: int | None = None,
    older_than: timedelta | None = None,
    apply: bool = False,
    reason: str = "",
    actor: str | None = None,
    grace_s: float = GRACE_S,
    now: datetime | None = None,
) -> GcResult:
    """Remove versions of ``name`` that no rule keeps; a dry run (the default) only says which.

    Args:
        reg: the registry.
        name: the model.
        keep_last: keep the ``keep_last`` highest version numbers.
        older_than: only remove versions registered longer ago than this.
        apply: write the ``deleted`` event and delete the unreferenced blobs; otherwise write nothing.
        reason: why, kept in the event.
        actor: who (default: see :func:`prefect_model_registry.registry.core.identity.default_actor`).
        grace_s: leave blobs written less than this many seconds ago.
        now: the time to measure ``older_than`` from (default: now).

    Raises:
        InvalidMetadata: neither ``keep_last`` nor ``older_than``, or a bad value.
        ModelNotFound: no such model.

    """
    check_model_name(name)
    if keep_last is None and older_than is None:
        raise InvalidMetadata("say what to keep: keep_last and/or older_than")
    if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0):
        raise InvalidMetadata(f"keep_last must be a whole number >= 0, not {keep_last!r}")
    check_text(reason, "reason")
    actor = resolve_actor(actor)
    cutoff = (now or datetime.now(UTC)) - older_than if older_than is not None else None
    latest = reg.latest_version(name)
    read = _manifests(reg, name)

    def choose(state: ModelState) -> tuple[list[int], dict[int, str]]:
        keep = protected(state, read)
        chosen: list[int] = []
        for version in range(1, latest + 1):
            if version in state.deleted or version in keep:
                continue
            if keep_last is not None and version > latest - keep_last:
                keep[version] = f"among the last {keep_last}"
                continue
            mv = read(version)
            if mv is None:
                keep[version] = "manifest unreadable (see verify)"
            elif cutoff is not None and mv.created_at > cutoff:
                keep[version] = "younger than the cut-off"
            else:
                chosen.append(version)
        return chosen, keep

    log = ModelLog(reg.store, name)
    chosen, keep = choose(log.state())
    result = GcResult(name, apply, chosen, keep)
    if apply and chosen:
        policy = {"keep_last": keep_last, "older_than_s": older_than.total_seconds() if older_than else None}

        def plan(state: ModelState) -> Draft | None:
            again, kept = choose(state)  # re-checked against the state the event follows (a promotion may race)
            result.deleted, result.kept = again, kept
            return Draft("deleted", None, actor, reason, None, {"versions": again, **policy}) if again else None

        event, _ = log.append(plan)
        result.event_seq = event.seq if event is not None else None
    _sweep(reg, name, result, apply=apply, grace_s=grace_s, planned=result.deleted)
    return result


def delete_model(
    reg: Registry,
    name: str,
    *,
    confirm: str | None = None,
    reason: str = "",
    actor: str | None = None,
    grace_s: float = GRACE_S,
) -> GcResult:
    """Delete every version of ``name``, whatever its stage or aliases, once ``confirm`` repeats the name.

    Without ``confirm`` it is a dry run. The log, the manifests and the reports stay (history); stages, aliases
    and the production history are cleared in the same event. Registering the name again continues its numbers.

    Raises:
        InvalidMetadata: ``confirm`` is given but is not the model's name.

    """
    check_model_name(name)
    check_text(reason, "reason")
    actor = resolve_actor(actor)
    if confirm is not None and confirm != name:
        raise InvalidMetadata(f"confirmation {confirm!r} does not match the model name {name!r}: nothing deleted")
    latest = reg.latest_version(name)
    log = ModelLog(reg.store, name)

    def remaining(state: ModelState) -> list[int]:
        return [v for v in range(1, latest + 1) if v not in state.deleted]

    result = GcResult(name, confirm is not None, remaining(log.state()))
    if confirm is not None and result.deleted:

        def plan(state: ModelState) -> Draft | None:
            result.deleted = remaining(state)
            data = {"versions": result.deleted, "whole_model": True}
            return Draft("deleted", None, actor, reason, None, data) if result.deleted else None

        event, _ = log.append(plan)
        result.event_seq = event.seq if event is not None else None
    _sweep(reg, name, result, apply=confirm is not None, grace_s=grace_s, planned=result.deleted)
    return result


def _bytes_of(mv: ModelVersion) -> set[str]:
    """Blob keys that retention may delete with a version: its artifact and training-data snapshot."""
    found = {mv.artifact.key}
    if mv.lineage.dataset_snapshot:
        found.add(keys.blob_key(mv.lineage.dataset_snapshot))
    return found


def live_blobs(reg: Registry, skip: Iterable[tuple[str, int]] = ()) -> set[str]:
    """Artifact and snapshot blobs named by a surviving (not deleted) version of any model."""
    skipping = set(skip)
    live: set[str] = set()
    for model in reg.models():
        state = ModelLog(reg.store, model).state()
        gone = set(state.deleted)
        # Every manifest, through the listing index and in parallel. An unreadable one raises: what it names is
        # unknown, so deleting blobs now could break it (the sweep stops and says so; `pmr verify` finds it).
        for mv in reg.versions(model):
            if mv.version not in gone and (model, mv.version) not in skipping:
                live |= _bytes_of(mv)
    return live


def _sweep(reg: Registry, name: str, result: GcResult, *, apply: bool, grace_s: float, planned: list[int]) -> None:
    """Delete the bytes of deleted versions that nothing surviving names (on a dry run: say which would go).

    Best effort after the event: the deletion has happened once its event landed, so a store error here is
    recorded in the result (``sweep_error``), not raised; the next gc run finishes the sweep.
    """
    try:
        _sweep_blobs(reg, name, result, apply=apply, grace_s=grace_s, planned=planned)
        for upload, age in reg.store.unfinished_uploads():
            if age > grace_s:
                if apply:
                    reg.store.abort_upload(upload)
                result.uploads_aborted.append(upload)
    except (RegistryError, OSError) as exc:
        if not result.event_seq and not apply:
            raise  # a dry run has nothing to protect: say what went wrong
        result.sweep_error = str(exc)


def _sweep_blobs(
    reg: Registry, name: str, result: GcResult, *, apply: bool, grace_s: float, planned: list[int]
) -> None:
    state = ModelLog(reg.store, name).state()
    gone = set(state.deleted) | set(planned)
    read = _manifests(reg, name)
    candidates: set[str] = set()
    for version in gone:
        mv = read(version)
        if mv is not None:
            candidates |= _bytes_of(mv)
    if not candidates:
        return
    # On a dry run the planned versions still count as live in the store: leave them out by hand.
    live = live_blobs(reg, skip=[(name, v) for v in planned])
    now = time.time()
    for key in sorted(candidates - live):
        age = transfer.age(reg.store, key, now)  # written, or reused by a registration in flight (its marker)
        if age is None:
            continue  # already gone (an earlier run, or a crash after its delete)
        if age < grace_s:
            result.blobs_young.append(key)
            continue
        if apply:
            reg.store.delete(key)
        result.blobs_deleted.append(key)
