"""The registry's records: version manifests, audit events and the per-model state they replay into."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from prefect_model_registry.registry.events import describe


def utcnow() -> datetime:
    """Now, in UTC, to the microsecond."""
    return datetime.now(UTC)


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces, no NaN): what gets hashed and stored."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_bytes(self) -> bytes:
        """Canonical JSON of the record."""
        return canonical_json(self.model_dump(mode="json"))


class Lineage(_Record):
    """Where a version came from: data, code, environment and the run that produced it."""

    dataset_uri: str | None = None
    dataset_fingerprint: str | None = None
    # The training data kept in the registry (content-addressed blob ``blobs/sha256/<hex>``), or why it was not.
    dataset_snapshot: str | None = None
    dataset_size: int | None = None
    dataset_snapshot_note: str | None = None
    code_version: str | None = None
    code_dirty: bool | None = None
    python_version: str | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    flow_name: str | None = None
    flow_run_id: str | None = None
    deployment: str | None = None
    parent_version: int | None = None
    # Where this version came from when it was copied or imported (``pmr copy``, ``pmr import-mlflow``).
    copied_from: str | None = None
    # The team's training code: the trainer ``module:function``, its module file's SHA-256, the distribution that
    # provides it (when installed) and the git state of the repository the file lives in (untracked files count).
    trainer: str | None = None
    trainer_sha256: str | None = None
    trainer_distribution: str | None = None
    trainer_distribution_version: str | None = None
    trainer_commit: str | None = None
    trainer_dirty: bool | None = None
    # The checks the run used: suite and thresholds (path or bundled name) with their files' SHA-256, and the
    # SHA-256 of the run's whole configuration (canonical JSON, defaults filled in).
    suite: str | None = None
    suite_sha256: str | None = None
    thresholds: str | None = None
    thresholds_sha256: str | None = None
    config_sha256: str | None = None

    @model_serializer(mode="wrap")
    def _leave_out_unrecorded_code(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A manifest written before these fields existed serialises to the very bytes it was stored as (its
        # ``registered`` event holds their hash): an unrecorded one is left out rather than written as null.
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if not (v is None and k in CODE_AND_CHECKS_FIELDS)}


#: Lineage fields added for the team's code and checks: written only when recorded.
CODE_AND_CHECKS_FIELDS = frozenset(
    {
        "trainer",
        "trainer_sha256",
        "trainer_distribution",
        "trainer_distribution_version",
        "trainer_commit",
        "trainer_dirty",
        "suite",
        "suite_sha256",
        "thresholds",
        "thresholds_sha256",
        "config_sha256",
    }
)


class VersionInfo(_Record):
    """What a registrant says about a new version (everything but the bytes)."""

    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    lineage: Lineage = Field(default_factory=Lineage)
    # Gate reports known at registration (e.g. data quality), stored as blobs beside the version.
    reports: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # The model's input signature: the training columns, in order, as {"name": ..., "dtype": ...}.
    signature: list[dict[str, str]] = Field(default_factory=list)


class ArtifactRef(_Record):
    """The serialised model: content-addressed bytes."""

    sha256: str
    size: int
    format: str  # "skops", "pickle", "joblib" or "bytes"
    key: str
    # skops: the non-default types the file holds, reviewed at registration; loads trust exactly these.
    trusted_types: list[str] | None = None


class ReportRef(_Record):
    """A gate report stored as a blob."""

    sha256: str
    key: str
    passed: bool
    # An advisory report (``"advisory": true`` in the report) is stored and shown but never blocks promotion.
    blocking: bool = True


class ModelVersion(_Record):
    """An immutable version manifest, created once with a create-only write."""

    name: str
    version: int
    artifact: ArtifactRef
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    lineage: Lineage = Field(default_factory=Lineage)
    reports: dict[str, ReportRef] = Field(default_factory=dict)
    signature: list[dict[str, str]] = Field(default_factory=list)
    created_by: str
    created_at: datetime
    idempotency_key: str | None = None

    @property
    def uri(self) -> str:
        """``models:/NAME/VERSION``."""
        return f"models:/{self.name}/{self.version}"


class Event(_Record):
    """One audit-log entry. ``prev_hash`` chains it to the event before (tamper-evident)."""

    seq: int
    type: str
    model: str
    version: int | None = None
    actor: str
    at: datetime
    reason: str = ""
    run_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    # The caller's operation key: a retry with the same key finds this event instead of acting twice.
    op_key: str | None = None

    def __str__(self) -> str:
        return describe(self)


GENESIS = "0" * 64


class ModelState(BaseModel):
    """Stages and aliases of one model: the audit log replayed up to ``seq``.

    Only versions with a stage other than ``none`` appear in ``stages``, so the state stays small however
    many versions a model has.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    seq: int = 0
    head_hash: str = GENESIS
    stages: dict[int, str] = Field(default_factory=dict)
    aliases: dict[str, int] = Field(default_factory=dict)
    # Production versions in order; the last is current. Rollback pops it.
    production_history: list[int] = Field(default_factory=list)
    # Every version that was ever in production, ascending (retention keeps them; leaving production keeps it here).
    ever_in_production: list[int] = Field(default_factory=list)
    # Versions that may not go to production, with why (failed gates, rejection).
    blocked: dict[int, list[str]] = Field(default_factory=dict)
    registered: int = 0
    updated_at: datetime | None = None
    # SHA-256 of the current report of each gate recorded after registration, per version.
    reports: dict[int, dict[str, str]] = Field(default_factory=dict)
    # The approval policy (``policy_set`` events; see registry.policy) and the stages each version was approved for.
    policy: dict[str, Any] | None = None
    approvals: dict[int, list[str]] = Field(default_factory=dict)
    # Edits after registration (``described``/``tagged`` events): the manifests stay as registered.
    descriptions: dict[int, str] = Field(default_factory=dict)
    tags: dict[int, dict[str, str | None]] = Field(default_factory=dict)
    model_description: str | None = None
    # Versions removed by retention (``deleted`` events): manifests and history stay, artifacts may be gone.
    deleted: list[int] = Field(default_factory=list)
    # The first version that ever entered production. Never cleared (not by archiving, rollback or deleting the
    # model): the policy's first-version exemption is spent once this is set.
    first_production: int | None = None
    # Each standing approval per version: stage, reviewer and log position; since approvals name their artifact,
    # its hash and registrant; before that, the policy in force at the approval's position (it is judged by it).
    approved_by: dict[int, list[dict[str, Any]]] = Field(default_factory=dict)
    # A proposed policy change (loosening) waiting for a second person: its seq, proposer and rules.
    policy_proposal: dict[str, Any] | None = None
    # Every change of who holds a stage (other than ``archived``) or an alias, oldest first: one entry per event
    # that changed any, ``{"seq", "at" (ISO), "actor", "type", "version", "reason", "start": [[kind, label,
    # version], ...], "end": [...]}`` (kind ``stage`` or ``alias``). Kept with the snapshot so that a reader has
    # the whole stage/alias history without reading old events; entries are never changed once appended.
    timeline: list[dict[str, Any]] = Field(default_factory=list)

    def stage_of(self, version: int) -> str:
        """The stage of ``version`` (``none`` when never staged)."""
        return self.stages.get(version, "none")

    def version_in(self, stage: str) -> list[int]:
        """Versions in ``stage``, ascending."""
        return sorted(v for v, s in self.stages.items() if s == stage)

    @property
    def production(self) -> int | None:
        """The production version, if any."""
        found = self.version_in("production")
        return found[0] if found else None
