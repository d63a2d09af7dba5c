"""``verify``: walk a model (or the whole registry) and report, typed, what does not add up. Never raises on damage.

Checked per model: the log (contiguous, parsable, hash-chained, no operation key used twice), the snapshot
against the replayed log, every manifest against its ``registered`` event, every artifact and report blob
against its hash (reports recorded later against their ``validated`` event), stage/alias pointers, the
``latest`` hint, and operation-key claims against the manifests and events that carry the keys. Every skops
artifact also goes through the review each load runs (``skops_review``): one that the reviewed list
or a cap refuses is reported as ``artifact_untrusted`` or ``artifact_too_large``. Across the registry: orphan
blobs and leftover temporary files. Each model's head (last event and its hash) is reported so that it can be
recorded outside the bucket and checked later (``expected_heads``): that catches a rewrite of the newest events,
which nothing inside the bucket can.

``repair`` cleans what is safe to clean; it never touches manifests or events.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError

from prefect_model_registry.registry.core import background, keys, log_index, skops_review, transfer, versions
from prefect_model_registry.registry.core import index as listing_index
from prefect_model_registry.registry.core.drafts import current_snapshot, parse_event
from prefect_model_registry.registry.core.idempotency import CLAIM_WAIT_S, owner_gone, request_fingerprint
from prefect_model_registry.registry.core.replay import apply_event
from prefect_model_registry.registry.errors import (
    ArtifactCapExceeded,
    IntegrityError,
    MalformedEvent,
    ObjectNotFound,
    RegistryError,
    UntrustedArtifact,
)
from prefect_model_registry.registry.events import EventType
from prefect_model_registry.registry.models import GENESIS, ModelState, ModelVersion, VersionInfo, sha256
from prefect_model_registry.registry.names import check_model_name
from prefect_model_registry.registry.registry import Registry


@dataclass(frozen=True)
class Finding:
    """One problem: where it is, what kind it is and what is wrong."""

    model: str
    key: str
    problem: str
    severity: str = "error"  # "error" or "warning"
    kind: str = "damage"


@dataclass
class VerifyReport:
    """What ``verify`` checked and found."""

    models: int = 0
    versions: int = 0
    events: int = 0
    blobs: int = 0
    findings: list[Finding] = field(default_factory=list)
    #: Per model: the last verified event's ``seq`` and SHA-256: record it outside the bucket.
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not any(f.severity == "error" for f in self.findings)

    def kinds(self) -> set[str]:
        """The kinds of the findings."""
        return {f.kind for f in self.findings}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (what ``pmr verify --json`` prints)."""
        return {
            "ok": self.ok,
            "models": self.models,
            "versions": self.versions,
            "events": self.events,
            "blobs": self.blobs,
            "heads": self.heads,
            "findings": [asdict(f) for f in self.findings],
        }


def verify(
    registry: Registry, name: str | None = None, *, expected_heads: Mapping[str, Mapping[str, Any]] | None = None
) -> VerifyReport:
    """Check one model, or every model (plus orphan blobs and temporary files) when ``name`` is None.

    Args:
        registry: the registry to check.
        name: one model; None for all.
        expected_heads: heads recorded earlier (``{model: {"seq": n, "hash": h}}``, as in :attr:`heads`):
            the event at each recorded ``seq`` must still hash to the recorded value.

    """
    background.flush()  # this process's pending cache refreshes land first: verify sees what they leave
    report = VerifyReport()
    if name is not None:
        check_model_name(name)
        if next(iter(registry.store.list(keys.model_prefix(name))), None) is None:
            registry.state(name)  # raises ModelNotFound: nothing at all stored under that name
        names = [name]
    else:
        names = registry.store.list_children(keys.MODELS)
    referenced: set[str] = set()
    for model in names:
        try:
            check_model_name(model)
        except RegistryError:
            report.findings.append(
                Finding("", keys.MODELS + model, "stray object among the models", "warning", "stray")
            )
            continue
        _Model(registry, model, report, referenced).run()
    for model, head in (expected_heads or {}).items():
        _check_expected_head(registry, model, head, report)
    if name is None:
        _check_blobs(registry, referenced, report)
    return report


class _Model:
    """The checks of one model."""

    def __init__(self, reg: Registry, name: str, report: VerifyReport, referenced: set[str]) -> None:
        self.reg, self.store, self.name, self.report, self.referenced = reg, reg.store, name, report, referenced
        self.registered: dict[int, str] = {}
        self.event_digests: dict[int, str] = {}  # seq -> SHA-256 of the event as stored (the log index's check)
        self.op_events: dict[str, list[int]] = {}
        self.validated: list[tuple[int, int, str, str]] = []  # seq, version, gate, report sha
        self.state = ModelState(name=name)
        self.states: dict[int, ModelState] = {0: self.state}
        self.manifests: dict[int, ModelVersion] = {}

    def bad(self, key: str, problem: str, kind: str, severity: str = "error") -> None:
        self.report.findings.append(Finding(self.name, key, problem, severity, kind))

    def run(self) -> None:
        self.report.models += 1
        steps = (
            self.log,
            self.snapshot,
            self.manifests_and_blobs,
            self.pointers,
            self.hint,
            self.claims,
            self.index,
            self.log_index,
        )
        for step in steps:
            try:
                step()
            except (RegistryError, ValueError, KeyError, TypeError) as exc:  # damage we did not foresee
                self.bad(keys.model_prefix(self.name), f"{step.__name__} check stopped: {exc}", "unreadable")

    # -- the log --------------------------------------------------------------------------------------
    def log(self) -> None:
        prefix = keys.events_prefix(self.name)
        numbered: dict[int, str] = {}
        for key in self.store.list(prefix):
            seq = keys.parse_number(key, prefix)
            if seq is None or seq < 1:
                self.bad(key, "stray object among the events", "stray")
            else:
                numbered[seq] = key
        prev, chained = GENESIS, True
        last = 0
        for seq in sorted(numbered):
            if seq != last + 1:
                self.bad(numbered[seq], f"event {last + 1} is missing (gap before event {seq})", "event_gap")
                break
            raw = self.store.get(numbered[seq]).data
            try:
                event = parse_event(self.name, seq, raw, prev)
            except IntegrityError as exc:
                kind = "chain_broken" if "hash chain" in str(exc) else "event_corrupt"
                if isinstance(exc, MalformedEvent):
                    kind = "event_malformed"  # chained correctly, but lacking or mistyping a field its kind needs
                if not raw and seq == max(numbered):
                    kind = "event_torn"  # nothing was built on it: repair can remove it
                self.bad(numbered[seq], str(exc), kind)
                chained = False
                break
            prev, last = sha256(raw), seq
            self.event_digests[seq] = prev
            self.state = apply_event(self.state, event, prev)
            self.states[seq] = self.state
            self.report.events += 1
            if event.op_key is not None:
                self.op_events.setdefault(event.op_key, []).append(seq)
            if event.type == EventType.REGISTERED and event.version is not None:
                if event.version in self.registered:
                    self.bad(numbered[seq], f"v{event.version} registered twice", "duplicate_event")
                self.registered[event.version] = str(event.data.get("manifest_sha256", ""))
            if event.type == EventType.VALIDATED and event.version is not None and event.data.get("report_sha256"):
                self.validated.append((seq, event.version, str(event.data.get("gate")), event.data["report_sha256"]))
        self.report.heads[self.name] = {"seq": last, "hash": prev, "complete": chained and last == len(numbered)}
        for op_key, seqs in self.op_events.items():
            if len(seqs) > 1:
                self.bad(
                    keys.events_prefix(self.name),
                    f"operation key {op_key!r} landed {len(seqs)} times (events {seqs})",
                    "duplicate_operation",
                )

    def snapshot(self) -> None:
        key = keys.state_key(self.name)
        try:
            raw = self.store.get(key).data
        except ObjectNotFound:
            if self.report.heads[self.name]["seq"]:
                self.bad(key, "no state snapshot (readers replay the log)", "snapshot_missing", "warning")
            return
        try:
            snap = ModelState.model_validate_json(raw)
        except (ValidationError, ValueError):
            self.bad(key, "snapshot is corrupt", "snapshot_corrupt")
            return
        replayed = self.states.get(snap.seq)
        if not current_snapshot(raw):
            self.bad(
                key, "snapshot written by an older release (readers replay the log)", "snapshot_outdated", "warning"
            )
        elif replayed is None:
            self.bad(key, f"snapshot claims event {snap.seq}, beyond the verified log", "snapshot_ahead")
        elif snap.timeline != replayed.model_dump(mode="json", include={"timeline"})["timeline"]:
            # The stage/alias timeline the dashboard reads from the snapshot instead of the old events.
            self.bad(
                key,
                "snapshot's timeline of stages and aliases differs from the replayed log (altered)",
                "snapshot_altered",
            )
        elif snap.model_dump(exclude={"updated_at"}) != replayed.model_dump(exclude={"updated_at"}):
            self.bad(key, "snapshot differs from the replayed log (altered)", "snapshot_altered")

    # -- manifests, blobs and reports -----------------------------------------------------------------
    def manifests_and_blobs(self) -> None:
        vprefix = keys.versions_prefix(self.name)
        numbers: list[int] = []
        by_key: dict[str, list[int]] = {}
        for key in self.store.list(vprefix):
            number = keys.parse_number(key, vprefix)
            if number is None or number < 1:
                self.bad(key, "stray object among the manifests", "stray", "warning")
                continue
            numbers.append(number)
            self.report.versions += 1
            raw = self.store.get(key).data
            if number not in self.registered:
                # An interrupted registration: its retry (same key) logs the event.
                self.bad(key, f"v{number} has no registration event yet", "unannounced", "warning")
            elif self.registered[number] != sha256(raw):
                self.bad(key, f"manifest of v{number} differs from the one registered (altered)", "manifest_altered")
            try:
                mv = versions.read_manifest(self.store, self.name, number)
            except IntegrityError as exc:
                self.bad(key, str(exc), "manifest_corrupt")
                continue
            self.manifests[number] = mv
            if mv.idempotency_key is not None:
                by_key.setdefault(mv.idempotency_key, []).append(number)
            for gate, ref in mv.reports.items():
                self.blob(key, ref.key, ref.sha256, f"{gate} report of v{number}")
            if number in self.state.deleted:
                # Retention removed its bytes (a `deleted` event): missing is expected, and leftovers are orphans.
                continue
            whole = self.blob(key, mv.artifact.key, mv.artifact.sha256, f"artifact of v{number}")
            if whole and mv.artifact.format == "skops":
                self.artifact(key, mv.artifact.key, number)
            if mv.lineage.dataset_snapshot:  # the training data it kept: a blob like any other
                digest = mv.lineage.dataset_snapshot
                self.blob(key, keys.blob_key(digest), digest, f"training-data snapshot of v{number}")
        numbers.sort()
        for version in sorted(set(self.registered) - set(numbers)):
            key = keys.manifest_key(self.name, version)
            self.bad(key, f"v{version} was registered but its manifest is missing", "manifest_missing")
        if numbers != list(range(1, len(numbers) + 1)):
            self.bad(vprefix, f"version numbers are not contiguous: {numbers[:10]}…", "version_gap")
        for op_key, found in by_key.items():
            if len(found) > 1:
                self.bad(vprefix, f"key {op_key!r} registered {len(found)} versions: {found}", "duplicate_version")
        self.later_reports()

    def later_reports(self) -> None:
        latest: dict[tuple[int, str], str] = {}
        for seq, version, gate, digest in self.validated:
            latest[(version, gate)] = digest
            blob = keys.blob_key(digest)
            if self.store.exists(blob):
                self.blob(keys.event_key(self.name, seq), blob, digest, f"{gate} report of v{version} (event {seq})")
        for (version, gate), digest in latest.items():
            if self.store.exists(keys.blob_key(digest)):
                continue
            legacy = keys.legacy_reports_prefix(self.name, version) + f"{gate}.json"
            try:
                raw = self.store.get(legacy).data
            except ObjectNotFound:
                self.bad(legacy, f"{gate} report of v{version} is missing", "report_missing")
                continue
            if sha256(raw) != digest:
                self.bad(legacy, f"{gate} report of v{version} differs from its validated event", "report_altered")

    def blob(self, owner: str, key: str, digest: str, what: str) -> bool:
        """Check a blob against its hash, read in chunks (never whole); True when it matches."""
        self.report.blobs += 1
        self.referenced.add(key)
        try:
            found = transfer.stream_hash(self.store, key)
        except ObjectNotFound:
            self.bad(owner, f"{what} is missing ({key})", "blob_missing")
            return False
        if found != digest:
            self.bad(owner, f"{what} is altered: sha256 does not match", "blob_altered")
            return False
        return True

    def artifact(self, owner: str, key: str, number: int) -> None:
        # The review every load runs: an artifact registered under an older list, or before the caps, is reported
        # here (loading it would be refused the same way) rather than found at serving time. It reads the zip
        # directory and schema only (ranged reads on S3).
        try:
            with self.store.open_read(key) as fh:
                skops_review.review(fh, action="loading it is refused")
        except ArtifactCapExceeded as exc:
            self.bad(owner, f"artifact of v{number}: {exc}", "artifact_too_large")
        except UntrustedArtifact as exc:
            self.bad(owner, f"artifact of v{number}: {exc}", "artifact_untrusted")
        except ObjectNotFound:
            self.bad(owner, f"artifact of v{number} is missing ({key})", "blob_missing")

    # -- pointers and caches --------------------------------------------------------------------------
    def pointers(self) -> None:
        existing = set(self.manifests) - set(self.state.deleted)
        where = keys.events_prefix(self.name)
        for version, stage in self.state.stages.items():
            if version not in existing:
                self.bad(where, f"stage {stage} points at missing or deleted v{version}", "dangling_pointer")
        for alias, version in self.state.aliases.items():
            if version not in existing:
                self.bad(where, f"alias {alias!r} points at missing or deleted v{version}", "dangling_pointer")
        if len(self.state.version_in("production")) > 1:
            self.bad(where, f"several production versions: {self.state.version_in('production')}", "two_production")

    def hint(self) -> None:
        key = keys.hint_key(self.name)
        try:
            raw = self.store.get(key).data
        except ObjectNotFound:
            return
        hint = versions.read_hint(self.store, self.name)
        if hint is None:
            self.bad(key, f"latest hint {raw[:20]!r} is not a version number (ignored)", "hint_invalid", "warning")
        elif hint not in self.manifests:
            self.bad(key, f"latest hint names missing v{hint} (ignored)", "hint_invalid", "warning")

    def index(self) -> None:
        # Only a cache, but listings show what it holds: an entry that differs from the manifest its registered
        # event hashed is an error; `verify --repair --apply` deletes the segment and listings rebuild it.
        for key, problem, kind in listing_index.check(self.store, self.name, self.registered, sha256):
            self.bad(key, problem, kind, "error" if kind == "index_altered" else "warning")

    def log_index(self) -> None:
        # Readers take a block only once a real event chains to it, so an altered block never replaces the log;
        # it is still damage to report, and `verify --repair --apply` deletes it (the next full read packs it).
        for key, problem, kind in log_index.check(self.store, self.name, self.event_digests, sha256):
            self.bad(key, problem, kind, "error" if kind == "log_index_altered" else "warning")

    def claims(self) -> None:
        prefix = keys.claims_prefix(self.name)
        claimed: dict[str, dict[str, Any]] = {}
        for key in self.store.list(prefix):
            try:
                record = json.loads(self.store.get(key).data)
                if not isinstance(record, dict) or not isinstance(record.get("key"), str):
                    raise ValueError("not a claim")
            except ValueError:
                self.bad(key, "operation-key claim is corrupt (a retry with its key is refused)", "claim_corrupt")
                continue
            if keys.claim_key(self.name, record["key"]) != key:
                self.bad(key, f"claim on {record['key']!r} is stored under another key's name", "claim_altered")
                continue
            claimed[record["key"]] = record
            version = record.get("version")
            if version is not None:
                mv = self.manifests.get(version) if isinstance(version, int) else None
                if mv is None or mv.idempotency_key != record["key"]:
                    self.bad(key, f"claim on {record['key']!r} names v{version}, not its version", "claim_altered")
                elif record.get("request") != registration_request(mv):
                    self.bad(key, f"claim on {record['key']!r} holds another request than v{version}", "claim_altered")
            elif record.get("op", "register") == "register":
                stale = owner_gone(record.get("owner")) or time.time() - float(record.get("at", 0)) > CLAIM_WAIT_S
                if stale:
                    self.bad(key, f"unfinished claim on {record['key']!r} (its attempt died)", "stale_claim", "warning")
        for version, mv in self.manifests.items():
            op_key = mv.idempotency_key
            if op_key is not None and op_key not in claimed:
                self.bad(
                    keys.manifest_key(self.name, version),
                    f"v{version} was registered with key {op_key!r} but its claim is gone (a retry would duplicate)",
                    "claim_missing",
                )
        for op_key, seqs in self.op_events.items():
            if op_key not in claimed:
                self.bad(
                    keys.event_key(self.name, seqs[0]),
                    f"event {seqs[0]} carries key {op_key!r} but its claim is gone",
                    "claim_missing",
                )


def registration_request(mv: ModelVersion) -> str:
    """The request fingerprint a registration claim must hold, recomputed from the manifest it made."""
    info = VersionInfo(
        metrics=mv.metrics, params=mv.params, tags=mv.tags, description=mv.description, lineage=mv.lineage
    )
    return request_fingerprint(mv.name, mv.artifact.format, info)


def _check_expected_head(reg: Registry, model: str, head: Mapping[str, Any], report: VerifyReport) -> None:
    try:
        seq = int(head["seq"])
        expected = str(head["hash"])
        check_model_name(model)
    except (KeyError, TypeError, ValueError, RegistryError):
        report.findings.append(Finding(model, "", f"recorded head {head!r} is unreadable", "error", "head_unreadable"))
        return
    if seq == 0:
        return
    key = keys.event_key(model, seq)
    try:
        raw = reg.store.get(key).data
    except ObjectNotFound:
        report.findings.append(Finding(model, key, f"recorded head event {seq} is gone", "error", "head_mismatch"))
        return
    if sha256(raw) != expected:
        report.findings.append(
            Finding(
                model, key, f"event {seq} differs from the head recorded outside the bucket", "error", "head_mismatch"
            )
        )


def _check_blobs(reg: Registry, referenced: set[str], report: VerifyReport) -> None:
    for key in reg.store.list(keys.BLOBS):
        if key not in referenced:
            report.findings.append(
                Finding("", key, "orphan blob (no manifest or event names it)", "warning", "orphan_blob")
            )
    for key, problem in getattr(reg.store, "unsafe_links", list)():  # a local store's own directories
        report.findings.append(Finding("", key, problem, "error", "symlink"))
    for name, age in reg.store.temp_files():
        report.findings.append(
            Finding(
                "", f".tmp/{name}", f"temporary file of an interrupted write ({age:.0f} s old)", "warning", "temp_file"
            )
        )
    for name, age in reg.store.unfinished_uploads():
        why = f"unfinished multipart upload ({age:.0f} s old; a retry resumes it, repair aborts it)"
        report.findings.append(Finding("", name, why, "warning", "upload_unfinished"))
