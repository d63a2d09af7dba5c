"""The registry: register versions, change stages and aliases, record decisions, resolve and load.

Object keys are built in ``keys``; manifests and version numbers live in ``versions``;
the log in ``log``; operation keys in ``idempotency``; input checks in
:mod:`prefect_model_registry.registry.core.checks`. Every writer here checks all of its input first, then writes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect_model_registry.registry.core import (
    announcer,
    artifacts,
    background,
    cache,
    index,
    keys,
    parallel,
    retention,
    snapshots,
    versions,
)
from prefect_model_registry.registry.core import search as finder
from prefect_model_registry.registry.core.checks import (
    MAX_VERSION,
    check_count,
    check_flag,
    check_gate,
    check_gate_report,
    check_info,
    check_op_key,
    check_optional_text,
    check_report,
    check_size,
    check_tags,
    check_text,
    check_version_number,
)
from prefect_model_registry.registry.core.idempotency import Claims, op_fingerprint, request_fingerprint
from prefect_model_registry.registry.core.identity import (
    MIN_VISIBLE_REASON,
    check_identity,
    listed,
    resolve_actor,
    same_person,
    visible_length,
)
from prefect_model_registry.registry.core.lifecycle import (
    approval_matters,
    check_alias_target,
    check_not_deleted,
    plan_rollback,
    plan_stage_change,
    protected_on,
    protected_on_blocked,
    rules_of,
)
from prefect_model_registry.registry.core.lineage import complete_lineage
from prefect_model_registry.registry.core.log import Draft, ModelLog, check_event_size
from prefect_model_registry.registry.core.policy import ApprovalRules, Subject, check_reviewer, loosening
from prefect_model_registry.registry.errors import (
    AliasNotFound,
    ApprovalRefused,
    ApprovalRequired,
    IntegrityError,
    InvalidMetadata,
    InvalidURI,
    ModelNotFound,
    ObjectNotFound,
    PolicyProposalNotFound,
    VersionNotFound,
)
from prefect_model_registry.registry.events import EventType
from prefect_model_registry.registry.models import (
    ArtifactRef,
    Event,
    ModelState,
    ModelVersion,
    ReportRef,
    VersionInfo,
    canonical_json,
    utcnow,
)
from prefect_model_registry.registry.names import STAGES, check_alias, check_model_name, check_stage, parse_model_uri
from prefect_model_registry.registry.settings import MAX_MANIFEST_BYTES
from prefect_model_registry.registry.store import open_store
from prefect_model_registry.registry.store.base import ObjectStore


def _check_break_glass_reason(reason: str) -> None:
    if visible_length(reason) < MIN_VISIBLE_REASON:
        raise InvalidMetadata(
            f"break-glass needs a reason of at least {MIN_VISIBLE_REASON} visible characters (it goes into the "
            f"audit log); got {reason!r}"
        )


def _check_record_sizes(
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


def _texts(**fields: object) -> None:
    for what, value in fields.items():
        check_optional_text(value, what.replace("_", " "))


def _removing(aliases: list[str]) -> dict[str, Any]:
    """Event data removing protected aliases from a version that may no longer carry them (nothing if none)."""
    return {"removed_aliases": aliases} if aliases else {}


def _check_rules(rules: object) -> ApprovalRules:
    """``rules`` if it is an :class:`ApprovalRules` whose names and aliases are usable."""
    if not isinstance(rules, ApprovalRules):
        raise InvalidMetadata("rules must be an ApprovalRules")
    for reviewer in rules.reviewers or []:
        check_identity(check_text(reviewer, "a reviewer", max_len=256), "reviewer")
    for alias in rules.protected_aliases:
        check_alias(alias)
    return rules


class Registry:
    """A model registry over an :class:`~prefect_model_registry.registry.store.ObjectStore`. No database, no server."""

    def __init__(self, store: ObjectStore, *, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.store = store
        self._claims = Claims(store)
        root = Path(cache_dir) if cache_dir is not None else cache.default_dir()
        self.cache = cache.ArtifactCache(root) if root is not None else None

    @classmethod
    def open(
        cls,
        location: str | os.PathLike[str] | None = None,
        *,
        create: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> Registry:
        """Open (and check) the registry at ``location``: ``s3://bucket/prefix`` or a directory.

        Args:
            location: the registry; default ``PMR_REGISTRY_URI``, else ``.pmr/registry``.
            create: create a local registry's directory on the first write.
            cache_dir: where verified artifacts are cached for :meth:`load` (default: see
                :mod:`prefect_model_registry.registry.core.cache`; ``PMR_CACHE_DIR=off`` turns the cache off).

        Raises:
            BucketNotFound, StoreAccessDenied, StoreUnavailable: the store cannot be used.

        """
        store = open_store(location, create=create)
        store.check()
        return cls(store, cache_dir=cache_dir)

    # -- keys -----------------------------------------------------------------------------------------
    @staticmethod
    def manifest_key(name: str, version: int) -> str:
        """Object key of the manifest of ``name`` version ``version``."""
        return keys.manifest_key(name, version)

    def _log(self, name: str) -> ModelLog:
        return ModelLog(self.store, check_model_name(name))

    # -- registering ----------------------------------------------------------------------------------
    def register(
        self,
        name: str,
        artifact: bytes,
        info: VersionInfo | None = None,
        *,
        fmt: str = "skops",
        actor: str | None = None,
        idempotency_key: str | None = None,
        operation_key: str | None = None,
        allow_missing_dataset: bool = False,
        snapshot_dataset: bool = True,
        dataset_bytes: bytes | None = None,
        created_at: datetime | None = None,
    ) -> ModelVersion:
        """Register serialised model bytes as the next version of ``name``.

        The bytes are stored content-addressed, then the manifest is created with a create-only write: of
        racing registrants, each gets its own number, with no gaps. The manifest is the record: this returns once
        it has landed, and the ``registered`` event follows in the background, in version order (any read of the
        log in this process waits for it; see ``announcer`` and :meth:`flush`). With an
        ``idempotency_key`` the event is logged before this returns.

        Args:
            name: model name.
            artifact: serialised model.
            info: metrics, params, tags, description, lineage and gate reports.
            fmt: artifact format (``skops``, ``pickle``, ``joblib`` or ``bytes``).
            actor: who registers (default :func:`default_actor`).
            idempotency_key: a retry with the same key gets the same version back, whatever point an earlier
                attempt crashed at.
            operation_key: the same as ``idempotency_key`` (the name every other writer uses).
            allow_missing_dataset: register even if ``info.lineage.dataset_uri`` cannot be read (with a warning).
            snapshot_dataset: keep the training data in the registry (content-addressed, stored once however many
                versions use it) up to ``PMR_SNAPSHOT_MAX_BYTES`` (default 100 MiB); the lineage says when it was
                not kept and why. ``False`` opts this registration out.
            dataset_bytes: the training data in hand, kept as the snapshot instead of reading ``dataset_uri``
                again (``pmr copy`` passes the source's snapshot); it must match the lineage's fingerprint.
            created_at: when the version was first made, for a history brought from elsewhere (an import);
                with ``info.lineage.copied_from`` set, its ``registered`` event carries this time too.

        The lineage is completed as on every registration path (code version, Python and packages, dataset
        fingerprint): see :func:`prefect_model_registry.registry.core.lineage.complete_lineage`.

        Raises:
            InvalidName, InvalidMetadata: bad input; nothing is written.
            DatasetUnavailable: the lineage names a dataset that cannot be read (see ``allow_missing_dataset``).
            IdempotencyConflict: the key was used before for a registration with other metadata, or by another
                actor than the one given (artifact bytes alone may differ: a re-serialised model is a retry).
            UntrustedArtifact: a skops artifact names something the reviewed list does not admit as the node kind
                using it (``UntrustedType``), or exceeds a cap on its size (``ArtifactCapExceeded``): see
                :mod:`prefect_model_registry.registry.core.skops_review`.

        """
        check_model_name(name)
        if not isinstance(fmt, str):
            raise InvalidMetadata(f"artifact format must be a string, not {type(fmt).__name__}")
        artifacts.check_format(fmt)
        info = check_info(info if info is not None else VersionInfo())
        if not isinstance(artifact, bytes | bytearray) or not artifact:
            raise InvalidMetadata("artifact must be non-empty bytes")
        if idempotency_key is not None and operation_key is not None and idempotency_key != operation_key:
            raise InvalidMetadata("idempotency_key and operation_key differ: give one")
        op_key = check_op_key(operation_key if operation_key is not None else idempotency_key)
        explicit_actor = actor is not None  # a key binds the actor its caller names (see registry.idempotency)
        actor = resolve_actor(actor)
        reviewed = artifacts.review_types(bytes(artifact), fmt)  # refuses code-running types before any write
        check_flag(snapshot_dataset, "snapshot_dataset")
        snapshots.check_unset(info.lineage)
        if dataset_bytes is not None and not isinstance(dataset_bytes, bytes):
            raise InvalidMetadata("dataset_bytes must be bytes")
        if created_at is not None and (not isinstance(created_at, datetime) or created_at.tzinfo is None):
            raise InvalidMetadata("created_at must be a timezone-aware datetime")
        lineage, data = snapshots.plan(
            complete_lineage(info.lineage, dataset_bytes=dataset_bytes, allow_missing_dataset=allow_missing_dataset),
            enabled=snapshot_dataset,
            data=dataset_bytes,
        )
        info = info.model_copy(update={"lineage": lineage})
        _check_record_sizes(name, info, fmt, len(artifact), reviewed, actor, op_key, created_at)
        if op_key is None:
            mv = self._register(name, bytes(artifact), info, fmt, actor, None, reviewed, data, created_at)
            # The manifest is the record: its event is logged in the background, in order (see registry.announcer).
            announcer.submit((id(self.store), name), mv.version, versions.announce, self.store, mv)
            return mv
        existing, claim, _ = self._claims.claim_registration(
            name, op_key, request_fingerprint(name, fmt, info), actor=actor, explicit_actor=explicit_actor
        )
        if existing is not None:
            return existing
        try:
            mv = self._register(name, bytes(artifact), info, fmt, actor, op_key, reviewed, data, created_at)
        except BaseException:
            self._claims.abandon(name, op_key, claim)
            raise
        self._claims.finish(name, op_key, claim, mv)
        self._claims.ensure_announced(mv, op_key, int(claim["log_seq"]))
        return mv

    def flush(self) -> None:
        """Wait until the events and cache writes this process handed to the background have been written.

        Reads and appends of a model's log in this process do this themselves; call it before handing over to
        another process (or before timing a batch of registrations). Never raises: an event that cannot be
        written yet is logged by the next registration of the model, or by ``pmr verify --repair``.
        """
        background.flush()

    def _register(
        self,
        name: str,
        artifact: bytes,
        info: VersionInfo,
        fmt: str,
        actor: str,
        op_key: str | None,
        reviewed: list[str] | None,
        dataset: bytes | None = None,
        created_at: datetime | None = None,
    ) -> ModelVersion:
        # The uploads and the read of where numbering stands are independent: they overlap. The manifest that
        # names the blobs is written only once every upload has landed.
        start = parallel.submit(versions.known_taken, self.store, name)
        uploads = [parallel.submit(versions.put_blob, self.store, artifact)]
        if dataset is not None:  # content-addressed: the same data is stored once
            uploads.append(parallel.submit(versions.put_blob, self.store, dataset))
        gates = list(info.reports)
        pending = [parallel.submit(self._put_report, info.reports[gate]) for gate in gates]
        digest = uploads[0].result()
        for upload in uploads[1:]:
            upload.result()
        reports = {gate: ref.result() for gate, ref in zip(gates, pending, strict=True)}
        manifest_fields: dict[str, Any] = {
            "name": name,
            "artifact": ArtifactRef(
                sha256=digest, size=len(artifact), format=fmt, key=keys.blob_key(digest), trusted_types=reviewed
            ),
            "metrics": info.metrics,
            "params": info.params,
            "tags": info.tags,
            "description": info.description,
            "lineage": info.lineage,
            "reports": reports,
            "signature": info.signature,
            "created_by": actor,
            "created_at": created_at or utcnow(),
            "idempotency_key": op_key,
        }
        return versions.allocate(self.store, name, manifest_fields, start=start.result())

    def register_model(self, name: str, model: Any, info: VersionInfo | None = None, **kwargs: Any) -> ModelVersion:
        """Serialise a scikit-learn model with skops and :meth:`register` it."""
        check_model_name(name)
        if info is not None:
            check_info(info)
        return self.register(name, artifacts.dump_model(model), info, fmt="skops", **kwargs)

    def register_file(
        self,
        name: str,
        path: str | os.PathLike[str],
        info: VersionInfo | None = None,
        *,
        fmt: str | None = None,
        **kwargs: Any,
    ) -> ModelVersion:
        """Register a model file (format from its suffix unless ``fmt`` is given)."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise InvalidMetadata(f"cannot read model file {p}: {exc.strerror or exc}") from None
        return self.register(name, data, info, fmt=fmt or artifacts.format_for(p), **kwargs)

    def _put_report(self, report: Mapping[str, Any]) -> ReportRef:
        raw = canonical_json(dict(report))
        digest = versions.put_blob(self.store, raw)
        return ReportRef(
            sha256=digest,
            key=keys.blob_key(digest),
            passed=bool(report.get("passed", False)),
            blocking=not report.get("advisory", False),
        )

    # -- reading --------------------------------------------------------------------------------------
    def models(self) -> list[str]:
        """Names of all registered models, sorted."""
        return [n for n in self.store.list_children(keys.MODELS) if self.store.exists(self.manifest_key(n, 1))]

    def overview(self) -> list[dict[str, Any]]:
        """One plain row per model: latest version, production, staging versions, aliases, last change."""
        rows = []
        for name in self.models():
            state = self._log(name).state()
            rows.append(
                {
                    "name": name,
                    "latest": self.latest_version(name),
                    "production": state.production,
                    "staging": state.version_in("staging"),
                    "aliases": dict(sorted(state.aliases.items())),
                    "updated_at": state.updated_at,
                    "deleted": bool(state.deleted) and len(state.deleted) >= state.registered,
                }
            )
        return rows

    def _require_model(self, name: str) -> None:
        if not self.store.exists(self.manifest_key(check_model_name(name), 1)):
            raise ModelNotFound(f"no model named {name!r} in {self.store.uri}")

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

    def latest_version(self, name: str) -> int:
        """The highest version number of ``name``, found from the manifests."""
        check_model_name(name)
        seen = versions.seen_taken(self.store, name)
        if seen:  # what this process saw, confirmed, and the number after it probed, at once
            here = parallel.submit(versions.exists, self.store, name, seen)
            beyond = versions.exists(self.store, name, seen + 1)
            if here.result():
                found = versions.first_free(self.store, name, seen + 2) - 1 if beyond else seen
                versions.saw_taken(self.store, name, found)
                return found
        self._require_model(name)
        found = versions.latest(self.store, name)
        versions.saw_taken(self.store, name, found)
        return found

    def versions(self, name: str, *, limit: int | None = None) -> list[ModelVersion]:
        """Manifests of ``name``, newest first; ``limit`` keeps only the newest few.

        Versions are dense (1..latest), so a page of the newest ``limit`` is read directly, without listing
        every key: its cost does not grow with the number of versions. A longer listing reads full blocks of
        manifests from the listing index (``index``, a cache checked by ``verify``) and only the
        last, incomplete block manifest by manifest.
        """
        latest = self.latest_version(name)
        if limit is None or limit > index.SEGMENT:
            # Full blocks of versions come from the listing index (a cache of the manifests, see registry.index).
            every = index.read_all(self.store, name, latest)
            return every[::-1][:limit]
        numbers = list(range(latest, max(latest - limit, 0), -1))
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(lambda n: self.get_version(name, n), numbers))

    def view(self, name: str, version: int, state: ModelState | None = None) -> ModelVersion:
        """The version with its current description and tags (edits after registration applied).

        The manifest itself never changes (``get_version`` returns it as registered, and ``verify`` checks it);
        ``describe``/``tag``/``untag`` are audit events that reads like this one apply.
        """
        return _current(self.get_version(name, version), state if state is not None else self.state(name))

    def search(
        self,
        name: str,
        *,
        stage: str | None = None,
        tags: Mapping[str, str] | None = None,
        where: Iterable[str] = (),
        sort: str | None = None,
        limit: int | None = None,
        include_deleted: bool = False,
    ) -> list[ModelVersion]:
        """Versions of ``name`` (current values) by stage, tags (all must match) and metric conditions.

        Args:
            name: model name.
            stage: only versions at this stage.
            tags: only versions carrying every one of these tags (current values).
            where: conditions like ``"roc_auc>=0.9"``; all must hold.
            sort: a metric (``-roc_auc`` for descending), ``version`` or ``created_at``; default newest first.
            limit: at most this many results; without ``sort`` only the newest ``limit`` versions are read.
            include_deleted: also list versions that retention removed (their manifests remain).

        Raises:
            InvalidMetadata: a malformed condition or sort; InvalidName: a bad stage.

        """
        conditions = [finder.parse_condition(w) for w in where]
        if sort is not None:
            finder.sort_key(sort)
        if stage is not None:
            check_stage(stage)
        state = self.state(name)
        scan = limit if sort is None and stage is None and not tags and not conditions else None
        gone = set() if include_deleted else set(state.deleted)
        found = [_current(mv, state) for mv in self.versions(name, limit=scan) if mv.version not in gone]
        chosen = finder.select(found, state.stages, stage=stage, tags=tags, where=conditions, sort=sort)
        return chosen[:limit] if limit is not None else chosen

    def describe(
        self,
        name: str,
        version: int | None,
        description: str,
        *,
        actor: str | None = None,
        operation_key: str | None = None,
    ) -> Event:
        """Set the description of a version (or of the model, ``version=None``) as an audit event."""
        check_model_name(name)
        op_key = check_op_key(operation_key)
        actor = resolve_actor(actor)
        check_text(description, "description")
        if version is None:
            self._require_model(name)
        else:
            self.get_version(name, version)
        request = op_fingerprint("describe", version=version, description=description)
        event = self._claims.append(
            name,
            op_key,
            "describe",
            request,
            lambda _st: Draft("described", version, actor, "", None, {"description": description}),
        )
        assert event is not None
        return event

    def tag(
        self,
        name: str,
        version: int,
        tags: Mapping[str, str] | None = None,
        *,
        remove: Iterable[str] = (),
        actor: str | None = None,
        operation_key: str | None = None,
    ) -> Event:
        """Set and/or remove tags of a version as one audit event (the manifest keeps its registered tags)."""
        check_model_name(name)
        op_key = check_op_key(operation_key)
        actor = resolve_actor(actor)
        setting = dict(tags or {})
        check_tags(setting)
        removing = sorted({check_text(k, "tag key", max_len=256) for k in remove})
        if not setting and not removing:
            raise InvalidMetadata("give tags to set or to remove")
        registered = self.get_version(name, version).tags
        data = {"set": setting, "removed": removing}

        def plan(st: ModelState) -> Draft:
            # The version's tags after this edit, as reads show them, stay within PMR_MAX_ENTRIES.
            current = {k: v for k, v in {**registered, **st.tags.get(version, {})}.items() if v is not None}
            after = (set(current) | set(setting)) - set(removing)
            check_count("a version's tags", after)
            return Draft("tagged", version, actor, "", None, data)

        event = self._claims.append(name, op_key, "tag", op_fingerprint("tag", version=version, **data), plan)
        assert event is not None
        return event

    def state(self, name: str) -> ModelState:
        """Current stages and aliases of ``name``."""
        self._require_model(name)
        return self._log(name).state()

    def resolve(self, uri: str) -> ModelVersion:
        """The manifest a model URI points at (``models:/churn/7``, ``models:/churn@production``, …).

        Raises:
            InvalidURI, ModelNotFound, VersionNotFound, AliasNotFound.

        """
        ref = parse_model_uri(uri)
        if ref.version is not None:
            return self.get_version(ref.name, ref.version)
        if ref.label == "latest":
            return self.get_version(ref.name, self.latest_version(ref.name))
        if ref.label == "none":
            raise InvalidURI("'@none' names no single version")

        def pick(state: ModelState) -> ModelVersion:
            if ref.label in STAGES:
                found = state.version_in(str(ref.label))
                if not found:
                    raise AliasNotFound(f"{ref.name} has no version in {ref.label}")
                return self.get_version(ref.name, found[-1])
            version = state.aliases.get(str(ref.label))
            if version is None:
                raise AliasNotFound(f"{ref.name} has no alias {ref.label!r}")
            return self.get_version(ref.name, version)

        # The manifest the snapshot's alias names is read while the log is probed for newer events.
        state, ahead = self._log(ref.name).state_then(pick)
        if state.seq == 0:
            self._require_model(ref.name)
        return ahead.result() if ahead is not None else pick(state)

    def _resolve_live(self, uri: str) -> ModelVersion:
        """:meth:`resolve`, refusing a version that retention deleted (stages and aliases never point at one)."""
        mv = self.resolve(uri)
        if parse_model_uri(uri).version is not None:
            check_not_deleted(self._log(mv.name).state(), mv.version)
        return mv

    def load_bytes(self, uri: str) -> tuple[ModelVersion, bytes]:
        """Resolve ``uri`` and return its manifest and artifact bytes, verified against the manifest hash."""
        mv = self._resolve_live(uri)
        cached = self.cache.get(mv.artifact.sha256) if self.cache is not None else None
        if cached is not None:
            return mv, cached  # checked against the manifest's hash as it was read
        try:
            data = self.store.get(mv.artifact.key).data
        except ObjectNotFound:
            raise IntegrityError(f"artifact of {mv.uri} is missing from the store") from None
        artifacts.verify_bytes(data, mv.artifact.sha256, f"artifact of {mv.uri}")
        if self.cache is not None:
            self.cache.put(mv.artifact.sha256, data)
        return mv, data

    def load_dataset(self, uri: str) -> bytes:
        """The exact bytes a version was trained on, from its snapshot in the registry (hash-checked).

        Raises:
            DatasetUnavailable: the version kept no snapshot (its lineage says why).
            IntegrityError: the snapshot is missing or its bytes do not match the recorded SHA-256.

        """
        return snapshots.read(self.store, self._resolve_live(uri))

    def load(self, uri: str, *, trusted: Iterable[str] = (), allow_pickle: bool = False) -> Any:
        """Load the model at ``uri``: its bytes must match the manifest's SHA-256 and pass the review of every load.

        Args:
            uri: model URI.
            trusted: exact names of scikit-learn, NumPy or SciPy classes the caller vouches for, admitted only as
                instances (never functions, types or calls: see ``check_extra``).
            allow_pickle: load a pickle or joblib artifact (they can run any code).

        Raises:
            IntegrityError: the bytes differ from the registered ones.
            UntrustedArtifact: a skops artifact the review refuses (``UntrustedType`` names what and how an operator
                admits it, ``ArtifactCapExceeded`` the cap), or pickle/joblib without ``allow_pickle``.

        """
        mv, data = self.load_bytes(uri)
        return artifacts.deserialize(
            data, mv.artifact.format, reviewed=mv.artifact.trusted_types, trusted=trusted, allow_pickle=allow_pickle
        )

    def lineage(self, name: str, version: int) -> list[ModelVersion]:
        """The version and its ancestors via ``parent_version``, newest first."""
        chain = [self.get_version(name, version)]
        seen = {version}
        while (parent := chain[-1].lineage.parent_version) is not None and parent not in seen:
            seen.add(parent)
            chain.append(self.get_version(name, parent))
        return chain

    def history(self, name: str) -> list[Event]:
        """Every audit event of ``name``, oldest first (the hash chain is checked on the way).

        A registration whose process died before logging its event is logged first (the log catches up:
        see :mod:`prefect_model_registry.registry.core.announcer`), so the history names every version.
        """
        self._require_model(name)
        versions.log_unlogged(self.store, name)
        return list(self._log(name).events())

    def state_at(self, name: str, when: datetime) -> ModelState:
        """Stages and aliases as they were at ``when``: answers "what was in production at time T?"."""
        self._require_model(name)
        return self._log(name).state_at(when)

    def reports(self, name: str, version: int) -> dict[str, dict[str, Any]]:
        """Gate reports of a version: those stored at registration, then later ones (which win).

        Every report is checked against the hash recorded for it (in the manifest, or in its ``validated``
        event) before it is parsed.

        Raises:
            IntegrityError: a report is missing, altered or unreadable.

        """
        mv = self.get_version(name, version)
        found = {
            gate: self._read_report(ref.key, ref.sha256, f"{gate} report of {mv.uri}")
            for gate, ref in mv.reports.items()
        }
        for gate, digest in self._log(name).state().reports.get(version, {}).items():
            what = f"{gate} report of {mv.uri}"
            try:
                found[gate] = self._read_report(keys.blob_key(digest), digest, what)
            except IntegrityError:
                legacy = keys.legacy_reports_prefix(name, version) + f"{gate}.json"
                if not self.store.exists(legacy):
                    raise
                # Stored by a release before operation keys; its event holds the same hash.
                found[gate] = self._read_report(legacy, digest, what)
        return found

    def _read_report(self, key: str, digest: str | None, what: str) -> dict[str, Any]:
        try:
            raw = self.store.get(key).data
        except ObjectNotFound:
            raise IntegrityError(f"{what} is missing from the store") from None
        if digest is not None:
            artifacts.verify_bytes(raw, digest, what)
        try:
            report = json.loads(raw)
        except ValueError:
            raise IntegrityError(f"{what} is not valid JSON") from None
        if not isinstance(report, dict):
            raise IntegrityError(f"{what} is not a JSON object")
        return report

    # -- changing stages and aliases -----------------------------------------------------------------
    def promote(
        self,
        name: str,
        version: int,
        to: str,
        *,
        actor: str | None = None,
        reason: str = "",
        run_id: str | None = None,
        operation_key: str | None = None,
        break_glass: bool = False,
        through_staging: bool = False,
        aliases: Iterable[str] = (),
    ) -> Event:
        """Move ``version`` to stage ``to`` in one atomic log append (archiving the old production one).

        With ``operation_key``, a retry after a crash at any point returns the event that landed.

        Args:
            name: model name.
            version: the version to move.
            to: target stage.
            actor: who promotes.
            reason: why (kept in the audit log).
            run_id: the flow run doing it, if any.
            operation_key: a retry with the same key returns the event that landed.
            break_glass: for incidents: promote without the approval the model's policy requires. The change is
                logged as a ``break_glass`` event with its reason (at least 3 visible characters); gates and
                rejections still block.
            through_staging: with ``to="production"``, a version not yet staged goes through staging in the same
                event (``via: staging``): one append, with every check of both steps (MLflow's one-call move).
            aliases: aliases that point at the version in the same event (``champion`` for a new production
                version): a protected alias moves with the promotion that covers it.

        Raises:
            InvalidTransition, PromotionBlocked, VersionNotFound, ModelNotFound.
            ApprovalRequired: the policy protects ``to`` and no recorded approval counts under the policy in force.

        """
        check_stage(to)
        check_flag(break_glass, "break_glass")
        check_flag(through_staging, "through_staging")
        op_key = check_op_key(operation_key)
        actor = resolve_actor(actor)
        _texts(reason=reason, run_id=run_id)
        if break_glass:
            _check_break_glass_reason(reason)
        if isinstance(aliases, str):
            raise InvalidMetadata("aliases must be a list of alias names, not one string")
        moving = sorted({check_alias(a) for a in aliases})
        exists = self._version_exists(name, version)  # checked in the plan, before any write
        subject = self._subject(name, version)
        kind = EventType.BREAK_GLASS if break_glass else EventType.STAGE_CHANGED

        def plan(st: ModelState) -> Draft:
            exists(st)
            # Recorded approvals are judged on the state this event follows, against the version's own manifest.
            facts = subject() if moving or approval_matters(st, to, through_staging=through_staging) else None
            data = plan_stage_change(
                st,
                version,
                to,
                break_glass=break_glass,
                through_staging=through_staging,
                subject=facts,
                aliases=moving,
            )
            return Draft(kind, version, actor, reason, run_id, data)

        event = self._claims.append(
            name,
            op_key,
            "promote",
            op_fingerprint(
                "promote",
                version=version,
                to=to,
                **({"break_glass": True} if break_glass else {}),
                **({"through_staging": True} if through_staging else {}),
                **({"aliases": moving} if moving else {}),
            ),
            plan,
        )
        assert event is not None
        return event

    def archive(self, name: str, version: int, **kwargs: Any) -> Event:
        """Archive a version (shorthand for ``promote(..., to="archived")``)."""
        return self.promote(name, version, "archived", **kwargs)

    def rollback(
        self,
        name: str,
        *,
        actor: str | None = None,
        reason: str = "",
        run_id: str | None = None,
        move_aliases: bool = False,
        operation_key: str | None = None,
        break_glass: bool = False,
    ) -> Event:
        """Put back the production version before the current one, archiving the current, atomically.

        Args:
            name: model name.
            actor: who rolls back.
            reason: why (kept in the audit log).
            run_id: the flow run doing it, if any.
            move_aliases: move the rolled-back version's aliases to the restored one, in the same event.
            operation_key: a retry with the same key returns the rollback that landed (never a second one).
            break_glass: for incidents: restore the version before even if it was rejected or failed a gate since
                (needs a reason of at least 3 visible characters; the event says BREAK-GLASS).

        Raises:
            NothingToRollBack: no earlier production version in the log.
            PromotionBlocked: the version before was rejected or failed a gate (without ``break_glass``).

        """
        check_model_name(name)
        check_flag(move_aliases, "move_aliases")
        check_flag(break_glass, "break_glass")
        op_key = check_op_key(operation_key)
        actor = resolve_actor(actor)
        _texts(reason=reason, run_id=run_id)
        if break_glass:
            _check_break_glass_reason(reason)
        self._require_model(name)

        def plan(st: ModelState) -> Draft:
            data = plan_rollback(st, move_aliases=move_aliases, break_glass=break_glass)
            return Draft("rolled_back", data["to"], actor, reason, run_id, data)

        request = op_fingerprint(
            "rollback", move_aliases=move_aliases, **({"break_glass": True} if break_glass else {})
        )
        event = self._claims.append(name, op_key, "rollback", request, plan)
        assert event is not None
        return event

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str | None = None,
        reason: str = "",
        run_id: str | None = None,
        operation_key: str | None = None,
    ) -> Event | None:
        """Point ``alias`` at ``version`` (moving it from wherever it was). ``None`` when already there.

        Raises:
            PromotionBlocked: the alias is protected by the model's policy and the version was rejected or failed
                a gate.
            ApprovalRequired: the alias is protected and the version is not (and was not) in production and has no
                approval for production that counts (move it with the promotion instead: ``promote(aliases=...)``).

        """
        check_alias(alias)
        op_key = check_op_key(operation_key)
        actor = resolve_actor(actor)
        _texts(reason=reason, run_id=run_id)
        exists = self._version_exists(name, version)
        subject = self._subject(name, version)

        def plan(st: ModelState) -> Draft | None:
            exists(st)
            check_not_deleted(st, version)
            previous = st.aliases.get(alias)
            if previous == version:
                return None
            rules = rules_of(st)
            if rules is not None and alias in rules.protected():
                check_alias_target(st, alias, version, subject())
            return Draft("alias_set", version, actor, reason, run_id, {"alias": alias, "previous": previous})

        return self._claims.append(
            name, op_key, "set_alias", op_fingerprint("set_alias", alias=alias, version=version), plan
        )

    def remove_alias(
        self,
        name: str,
        alias: str,
        *,
        actor: str | None = None,
        reason: str = "",
        run_id: str | None = None,
        operation_key: str | None = None,
    ) -> Event:
        """Remove ``alias``.

        Raises:
            AliasNotFound: no version carries it.

        """
        check_model_name(name)
        check_alias(alias)
        op_key = check_op_key(operation_key)
        actor = resolve_actor(actor)
        _texts(reason=reason, run_id=run_id)
        self._require_model(name)

        def plan(st: ModelState) -> Draft:
            if alias not in st.aliases:
                raise AliasNotFound(f"{name} has no alias {alias!r}")
            return Draft("alias_removed", st.aliases[alias], actor, reason, run_id, {"alias": alias})

        event = self._claims.append(name, op_key, "remove_alias", op_fingerprint("remove_alias", alias=alias), plan)
        assert event is not None
        return event

    # -- gates and decisions --------------------------------------------------------------------------
    def record_report(
        self,
        name: str,
        version: int,
        gate: str,
        report: Mapping[str, Any],
        *,
        passed: bool,
        actor: str | None = None,
        run_id: str | None = None,
        operation_key: str | None = None,
    ) -> Event | None:
        """Store a gate report beside a version and log the verdict; a failure blocks promotion.

        The report is stored content-addressed first, then the ``validated`` event records its hash; the
        current report of each gate is the one its latest event names. Recording the report that is already
        current (a flow re-run after a suspend, a retried task) is a no-op and returns ``None``; a retry after
        the report was stored but before its event landed appends the event.
        """
        check_model_name(name)
        check_gate(gate)
        check_gate_report(report)  # typed as the verdict and the event read it (fuzzing found a TypeError)
        check_flag(passed, "passed")
        op_key = check_op_key(operation_key)
        actor = resolve_actor(actor)
        _texts(run_id=run_id)
        raw = canonical_json(dict(report))
        failed = [c.get("name") for c in report.get("checks", []) if isinstance(c, dict) and not c.get("passed")]
        reason = "" if passed else "failed checks: " + ", ".join(str(f) for f in failed[:5])
        self.get_version(name, version)
        digest = versions.put_blob(self.store, raw)
        data = {"gate": gate, "passed": passed, "report_sha256": digest}

        def plan(st: ModelState) -> Draft | None:
            if st.reports.get(version, {}).get(gate) == digest:
                return None  # this very report is already the gate's current one
            removed = [] if passed else protected_on(st, version)  # never left on a gate-blocked version
            return Draft("validated", version, actor, reason, run_id, {**data, **_removing(removed)})

        request = op_fingerprint("record_report", version=version, gate=gate, report=digest, passed=passed)
        return self._claims.append(name, op_key, "record_report", request, plan)

    def record_decision(
        self,
        name: str,
        version: int,
        *,
        approved: bool,
        reviewer: str,
        comment: str = "",
        run_id: str | None = None,
        four_eyes: bool = False,
        allowed_reviewers: Iterable[str] | None = None,
        target_stage: str = "production",
        operation_key: str | None = None,
    ) -> Event:
        """Log a reviewer's approval or rejection of ``version``; a rejection blocks promotion.

        Names are compared under the registry's identity rule (``identity``), and the model's policy
        is checked inside the append, on the state the event follows. An approval names the version's artifact
        hash and registrant; a promotion judges it again against the policy in force then. A rejection removes the
        version's protected aliases in the same event.

        Raises:
            ApprovalRefused: the reviewer is not allowed, or is the registrant while four-eyes is on (by the
                arguments or by the model's own policy, see :meth:`set_policy`).
            InvalidMetadata: no reviewer, or a rejection without a comment.
            InvalidIdentity: the reviewer's name normalises to nothing.

        """
        check_model_name(name)
        check_flag(approved, "approved")
        check_flag(four_eyes, "four_eyes")
        check_stage(target_stage)
        op_key = check_op_key(operation_key)
        reviewer = check_text(reviewer if reviewer is not None else "", "reviewer", max_len=256).strip()
        check_text(comment, "comment")
        _texts(run_id=run_id)
        allowed = None
        if allowed_reviewers is not None:
            allowed = {check_text(r, "an allowed reviewer", max_len=256) for r in allowed_reviewers}
        mv = self.get_version(name, version)
        if not reviewer:
            raise InvalidMetadata("a decision needs the reviewer's name")
        check_identity(reviewer, "reviewer")
        if not approved and not comment.strip():
            raise InvalidMetadata("a rejection needs a comment saying why")
        if allowed is not None and not listed(reviewer, allowed):
            raise ApprovalRefused(f"{reviewer!r} is not an allowed reviewer of {name}")
        if four_eyes and same_person(reviewer, mv.created_by):
            raise ApprovalRefused(
                f"four-eyes rule: {reviewer!r} registered {name} v{version} (as {mv.created_by!r}) "
                "and cannot approve it"
            )
        kind = "approved" if approved else "rejected"
        data: dict[str, Any] = {"target_stage": target_stage}
        if approved:
            data |= {"artifact_sha256": mv.artifact.sha256, "registrant": mv.created_by}

        def plan(st: ModelState) -> Draft:
            check_reviewer(rules_of(st), name, version, reviewer, mv.created_by)  # the policy this event follows
            removed = [] if approved else protected_on(st, version)
            return Draft(kind, version, reviewer, comment, run_id, {**data, **_removing(removed)})

        request = op_fingerprint("decision", version=version, kind=kind, reviewer=reviewer, target=target_stage)
        event = self._claims.append(name, op_key, "record_decision", request, plan)
        assert event is not None
        return event

    def record_timeout(
        self,
        name: str,
        version: int,
        *,
        actor: str | None = None,
        reason: str = "",
        run_id: str | None = None,
        operation_key: str | None = None,
    ) -> Event:
        """Log that an approval wait ended with no decision (the version keeps its stage)."""
        check_model_name(name)
        op_key = check_op_key(operation_key)
        actor = resolve_actor(actor)
        _texts(reason=reason, run_id=run_id)
        self.get_version(name, version)
        event = self._claims.append(
            name,
            op_key,
            "record_timeout",
            op_fingerprint("record_timeout", version=version),
            lambda _st: Draft("approval_timed_out", version, actor, reason, run_id, {}),
        )
        assert event is not None
        return event

    def record_refusal(
        self,
        name: str,
        version: int,
        *,
        reviewer: str,
        reason: str,
        run_id: str | None = None,
        operation_key: str | None = None,
    ) -> Event:
        """Log a decision the rules refused (not an allowed reviewer, four-eyes): who tried, and why it failed.

        Changes nothing else; the version waits for another decision. The flows call it when
        :meth:`record_decision` raises :class:`ApprovalRefused`, so a refused reviewer shows in the history.
        """
        check_model_name(name)
        op_key = check_op_key(operation_key)
        reviewer = check_text(reviewer if reviewer is not None else "", "reviewer", max_len=256).strip() or "unknown"
        _texts(reason=reason, run_id=run_id)
        self.get_version(name, version)
        event = self._claims.append(
            name,
            op_key,
            "record_refusal",
            op_fingerprint("record_refusal", version=version, reviewer=reviewer),
            lambda _st: Draft("decision_refused", version, reviewer, reason, run_id, {}),
        )
        assert event is not None
        return event

    # -- scoring runs ---------------------------------------------------------------------------------
    def record_scoring(self, name: str, version: int, record: Mapping[str, Any], *, actor: str | None = None) -> Event:
        """Log that a scoring run used ``version`` (``record``: run id, input fingerprint, output, row count).

        The run id is the operation key: a retried scoring task logs its run once.

        Raises:
            InvalidMetadata: the record lacks a ``run`` or is not plain JSON.

        """
        check_model_name(name)
        if not isinstance(record, Mapping) or not isinstance(record.get("run"), str) or not record["run"]:
            raise InvalidMetadata("a scoring record needs its run id ('run')")
        check_report(dict(record), "scoring record")
        actor = resolve_actor(actor)
        self.get_version(name, version)
        op_key = check_op_key(f"scoring:{record['run']}")
        data = dict(record)
        event = self._claims.append(
            name,
            op_key,
            "record_scoring",
            op_fingerprint("record_scoring", version=version, run=record["run"]),
            lambda _st: Draft("scored", version, actor, f"{data.get('rows', '?')} rows", data["run"], data),
        )
        assert event is not None
        return event

    def scoring_runs(self, name: str, version: int | None = None) -> list[Event]:
        """The ``scored`` events of ``name`` (of one version if given), oldest first."""
        scored = (e for e in self.history(name) if e.type == EventType.SCORED)
        return [e for e in scored if version is None or e.version == version]

    # -- approval policy ------------------------------------------------------------------------------
    # -- retention (see registry.retention) ----------------------------------------------------------
    def gc(self, name: str, **kwargs: Any) -> Any:
        """Remove old versions of ``name`` that no rule keeps: see ``gc``."""
        return retention.gc(self, name, **kwargs)

    def delete_model(self, name: str, **kwargs: Any) -> Any:
        """Delete every version of ``name`` (with ``confirm=name``): see ``delete_model``."""
        return retention.delete_model(self, name, **kwargs)

    def policy(self, name: str) -> ApprovalRules | None:
        """The approval policy of ``name`` (``None`` when none was set: no stage needs an approval)."""
        self._require_model(name)
        return rules_of(self._log(name).state())

    def set_policy(
        self,
        name: str,
        rules: ApprovalRules,
        *,
        actor: str | None = None,
        reason: str = "",
        only_if_unset: bool = False,
        operation_key: str | None = None,
    ) -> Event | None:
        """Keep an approval policy for ``name`` in its audit log; every later promotion is checked against it.

        One step only when it tightens (or sets the first policy): a change that lets through anything the policy
        in force does not (a stage dropped, a reviewer added or the list dropped, four-eyes off, the exemption back
        on, an alias unprotected) needs two people: :meth:`propose_policy`, then :meth:`approve_policy` by another.
        Judged inside the append, on the policy the event follows. Newly protected aliases that point at a
        rejected or gate-blocked version are removed in the same event.

        Args:
            name: model name.
            rules: which stages need an approval, who may approve, four-eyes, first-version exemption, protected
                aliases.
            actor: who sets it.
            reason: why (kept in the audit log).
            only_if_unset: do nothing when the model already has a policy (how a pipeline records its default
                without loosening what an administrator set).
            operation_key: a retry with the same key returns the event that landed.

        Returns:
            The ``policy_set`` event, or ``None`` when nothing changed.

        Raises:
            ApprovalRequired: the change loosens the policy in force (propose it instead).

        """
        check_model_name(name)
        _check_rules(rules)
        check_flag(only_if_unset, "only_if_unset")
        op_key = check_op_key(operation_key)
        actor = resolve_actor(actor)
        _texts(reason=reason)
        self._require_model(name)
        data = rules.model_dump(mode="json")

        def plan(st: ModelState) -> Draft | None:
            current = rules_of(st)
            if current == rules or (only_if_unset and st.policy is not None):
                return None
            looser = loosening(current, rules, exemption_spent=st.first_production is not None)
            if looser:
                raise ApprovalRequired(
                    f"this change loosens the approval policy of {name} ({'; '.join(looser)}): loosening takes two "
                    f"people (pmr policy propose, then another person runs pmr policy approve)"
                )
            return Draft(
                "policy_set", None, actor, reason, None, {**data, **_removing(protected_on_blocked(st, rules))}
            )

        return self._claims.append(name, op_key, "set_policy", op_fingerprint("set_policy", **data), plan)

    def propose_policy(
        self,
        name: str,
        rules: ApprovalRules,
        *,
        actor: str | None = None,
        reason: str = "",
        operation_key: str | None = None,
    ) -> Event | None:
        """Propose a new approval policy for ``name``: the first of the two events a loosening takes.

        It changes nothing yet: it waits (``pmr pending``) until another person approves it with
        :meth:`approve_policy`. A newer proposal replaces a pending one.

        Returns:
            The ``policy_proposed`` event, or ``None`` when ``rules`` are already the policy in force.

        """
        check_model_name(name)
        _check_rules(rules)
        op_key = check_op_key(operation_key)
        actor = resolve_actor(actor)
        _texts(reason=reason)
        self._require_model(name)
        data = {"rules": rules.model_dump(mode="json")}

        def plan(st: ModelState) -> Draft | None:
            if rules_of(st) == rules:
                return None
            return Draft("policy_proposed", None, actor, reason, None, data)

        return self._claims.append(name, op_key, "propose_policy", op_fingerprint("propose_policy", **data), plan)

    def approve_policy(
        self,
        name: str,
        proposal: int | None = None,
        *,
        actor: str | None = None,
        reason: str = "",
        operation_key: str | None = None,
    ) -> Event:
        """Approve the pending policy proposal of ``name``: it takes effect with this event.

        The approver must be another identity than the proposer (under the identity rule) and, when the policy in
        force lists reviewers, one of them; both are checked inside the append, on the state the event follows.

        Args:
            name: model name.
            proposal: the proposal's event number (``pmr pending`` shows it); default the pending one.
            actor: who approves.
            reason: why (kept in the audit log).
            operation_key: a retry with the same key returns the event that landed.

        Raises:
            PolicyProposalNotFound: no proposal waits, or not the one named.
            ApprovalRefused: the approver proposed it, or is not a listed reviewer.

        """
        check_model_name(name)
        if proposal is not None:
            check_version_number(proposal)
        op_key = check_op_key(operation_key)
        actor = resolve_actor(actor)
        _texts(reason=reason)
        self._require_model(name)

        def plan(st: ModelState) -> Draft:
            pending = st.policy_proposal
            if pending is None or (proposal is not None and pending["seq"] != proposal):
                waiting = f" (#{pending['seq']} waits)" if pending is not None else ""
                raise PolicyProposalNotFound(
                    f"{name} has no pending policy proposal{f' #{proposal}' if proposal is not None else ''}{waiting}"
                )
            if same_person(actor, pending["by"]):
                raise ApprovalRefused(
                    f"{actor!r} proposed policy change #{pending['seq']} of {name}: another person must approve it"
                )
            current = rules_of(st)
            if current is not None and current.reviewers is not None and not listed(actor, current.reviewers):
                raise ApprovalRefused(f"{actor!r} is not an allowed reviewer of {name} (policy of {name})")
            rules = ApprovalRules.model_validate(pending["rules"])
            data = {"proposal": pending["seq"], "proposed_by": pending["by"], "rules": pending["rules"]}
            return Draft(
                "policy_approved", None, actor, reason, None, {**data, **_removing(protected_on_blocked(st, rules))}
            )

        request = op_fingerprint("approve_policy", proposal=proposal)
        event = self._claims.append(name, op_key, "approve_policy", request, plan)
        assert event is not None
        return event


def _current(mv: ModelVersion, state: ModelState) -> ModelVersion:
    """``mv`` with the description and tags its edit events set."""
    edits = state.tags.get(mv.version, {})
    tags = {k: v for k, v in ({**mv.tags, **edits}).items() if v is not None}
    description = state.descriptions.get(mv.version, mv.description)
    if tags == mv.tags and description == mv.description:
        return mv
    return mv.model_copy(update={"tags": tags, "description": description})
