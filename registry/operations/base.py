"""What every operation of the ``Registry`` shares: its store, the log, and the one write path.

The store and the model log, the checks that a model or version exists, and :meth:`RegistryBase._write`, which
every writer goes through.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from prefect_model_registry.registry.core import (
    cache,
    keys,
    versions,
)
from prefect_model_registry.registry.core.checks import (
    MAX_VERSION,
    check_op_key,
    check_optional_text,
    check_size,
    check_text,
    check_version_number,
)
from prefect_model_registry.registry.core.drafts import Draft, check_event_size
from prefect_model_registry.registry.core.idempotency import Claims
from prefect_model_registry.registry.core.identity import (
    MIN_VISIBLE_REASON,
    check_identity,
    resolve_actor,
    visible_length,
)
from prefect_model_registry.registry.core.log import ModelLog
from prefect_model_registry.registry.core.policy import ApprovalRules, Subject
from prefect_model_registry.registry.errors import (
    InvalidMetadata,
    ModelNotFound,
    VersionNotFound,
)
from prefect_model_registry.registry.models import (
    ArtifactRef,
    Event,
    ModelState,
    ModelVersion,
    ReportRef,
    VersionInfo,
    utcnow,
)
from prefect_model_registry.registry.names import check_alias, check_model_name
from prefect_model_registry.registry.settings import MAX_MANIFEST_BYTES
from prefect_model_registry.registry.store.base import ObjectStore


def check_break_glass_reason(reason: str) -> None:
    """Refuse a break-glass reason too short to tell a reader why."""
    if visible_length(reason) < MIN_VISIBLE_REASON:
        raise InvalidMetadata(
            f"break-glass needs a reason of at least {MIN_VISIBLE_REASON} visible characters (it goes into the "
            f"audit log); got {reason!r}"
        )


def check_record_sizes(
    name: str,
    info: VersionInfo,
    fmt: str,
    size: int,
    reviewed: list[str] | None,
    actor: str,
    op_key: str | None,
    created_at: datetime | None,
) -> None:
    """Refuse a registration whose manifest or ``registered`` event would be over its limit, before any write.

    Measured on the manifest as it would be stored, with the widest version number and placeholder hashes of
    the same length as the real ones.
    """
    digest = "0" * 64
    mv = ModelVersion(
        name=name,
        version=MAX_VERSION,
        artifact=ArtifactRef(sha256=digest, size=size, format=fmt, key=keys.blob_key(digest), trusted_types=reviewed),
        metrics=info.metrics,
        params=info.params,
        tags=info.tags,
        description=info.description,
        lineage=info.lineage,
        reports={gate: ReportRef(sha256=digest, key=keys.blob_key(digest), passed=False) for gate in info.reports},
        signature=info.signature,
        created_by=actor,
        created_at=created_at or utcnow(),
        idempotency_key=op_key,
    )
    check_size(f"the manifest of {name}", len(mv.to_bytes()), MAX_MANIFEST_BYTES)
    check_event_size(name, versions.registered_draft(mv))


def check_texts(**fields: object) -> None:
    """Check optional texts (``reason``, ``run_id`` ...) named by their keyword."""
    for what, value in fields.items():
        check_optional_text(value, what.replace("_", " "))


def removing(aliases: list[str]) -> dict[str, Any]:
    """Event data removing protected aliases from a version that may no longer carry them (nothing if none)."""
    return {"removed_aliases": aliases} if aliases else {}


def check_rules(rules: object) -> ApprovalRules:
    """``rules`` if it is an :class:`ApprovalRules` whose names and aliases are usable."""
    if not isinstance(rules, ApprovalRules):
        raise InvalidMetadata("rules must be an ApprovalRules")
    for reviewer in rules.reviewers or []:
        check_identity(check_text(reviewer, "a reviewer", max_len=256), "reviewer")
    for alias in rules.protected_aliases:
        check_alias(alias)
    return rules


def current_view(mv: ModelVersion, state: ModelState) -> ModelVersion:
    """``mv`` with the description and tags its edit events set."""
    edits = state.tags.get(mv.version, {})
    tags = {k: v for k, v in ({**mv.tags, **edits}).items() if v is not None}
    description = state.descriptions.get(mv.version, mv.description)
    if tags == mv.tags and description == mv.description:
        return mv
    return mv.model_copy(update={"tags": tags, "description": description})


class RegistryBase:
    """The state every operation shares: set by :class:`~prefect_model_registry.registry.Registry`."""

    store: ObjectStore
    _claims: Claims
    cache: cache.ArtifactCache | None

    @staticmethod
    def manifest_key(name: str, version: int) -> str:
        """Object key of the manifest of ``name`` version ``version``."""
        return keys.manifest_key(name, version)

    def get_version(self, name: str, version: int) -> ModelVersion:
        """The manifest of ``name`` version ``version``.

        Raises:
            ModelNotFound, VersionNotFound: nothing there.
            IntegrityError: the manifest is unreadable or describes another version.

        """
        check_model_name(name)
        check_version_number(version)
        try:
            return versions.read_manifest(self.store, name, version)
        except VersionNotFound:
            self._require_model(name)
            raise

    # -- the one write path ---------------------------------------------------------------------------------------
    def _opening(self, operation_key: str | None, actor: str | None, **texts: object) -> tuple[str | None, str]:
        """The checks every writer starts with: its operation key, who acts, and its free texts (reason, run id).

        Each writer then checks its own input, and writes only through :meth:`_write`: all input is refused before
        anything is written.
        """
        op_key = check_op_key(operation_key)
        who = resolve_actor(actor)
        check_texts(**texts)
        return op_key, who

    def _write(
        self, name: str, op_key: str | None, op: str, request: str, plan: Callable[[ModelState], Draft | None]
    ) -> Event | None:
        """Append the event ``plan`` makes of ``name``'s current state, under the operation key ``op_key``.

        The one write path of every writer but registration (which publishes a manifest first): a retry with the
        same key gets the outcome that landed, a plan that finds nothing to change (``None``) writes nothing.
        """
        return self._claims.append(name, op_key, op, request, plan)

    def _write_one(
        self, name: str, op_key: str | None, op: str, request: str, plan: Callable[[ModelState], Draft]
    ) -> Event:
        """:meth:`_write` for an operation whose plan always makes an event."""
        event = self._write(name, op_key, op, request, plan)
        assert event is not None  # the plan never returns None
        return event

    def _log(self, name: str) -> ModelLog:
        return ModelLog(self.store, check_model_name(name))

    def _require_model(self, name: str) -> None:
        if not self.store.exists(self.manifest_key(check_model_name(name), 1)):
            raise ModelNotFound(f"no model named {name!r} in {self.store.uri}")

    def _version_exists(self, name: str, version: int) -> Callable[[ModelState], None]:
        """A check, for a plan, that ``name`` v``version`` exists (raises VersionNotFound/ModelNotFound if not).

        A version the log says is registered exists (numbers are dense and manifests are never removed), so the
        usual case costs no request; a newer one, not yet in the state, is looked up by its manifest.
        """
        check_model_name(name)
        check_version_number(version)

        def check(state: ModelState) -> None:
            if version > state.registered:
                self.get_version(name, version)

        return check

    def _subject(self, name: str, version: int) -> Callable[[], Subject]:
        """A lazy read of what an approval is of (registrant, artifact hash): once, and only if a plan needs it."""
        found: list[Subject] = []

        def get() -> Subject:
            if not found:
                mv = self.get_version(name, version)  # immutable: one read serves every retry of the plan
                found.append(Subject(mv.created_by, mv.artifact.sha256))
            return found[0]

        return get
