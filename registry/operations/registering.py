"""Registering versions: the artifact, its lineage and reports, a manifest published by one conditional write."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from prefect_model_registry.registry.core import (
    announcer,
    artifacts,
    background,
    keys,
    parallel,
    snapshots,
    transfer,
    versions,
)
from prefect_model_registry.registry.core.checks import (
    check_flag,
    check_info,
    check_op_key,
)
from prefect_model_registry.registry.core.idempotency import request_fingerprint
from prefect_model_registry.registry.core.identity import (
    resolve_actor,
)
from prefect_model_registry.registry.core.lineage import complete_lineage
from prefect_model_registry.registry.core.transfer import ProgressCallback
from prefect_model_registry.registry.errors import (
    DatasetUnavailable,
    InvalidMetadata,
)
from prefect_model_registry.registry.models import (
    ArtifactRef,
    Lineage,
    ModelVersion,
    ReportRef,
    VersionInfo,
    canonical_json,
    utcnow,
)
from prefect_model_registry.registry.names import check_model_name
from prefect_model_registry.registry.operations.base import (
    RegistryBase,
    check_record_sizes,
)


class Registering(RegistryBase):
    """Registering versions: the artifact, its lineage and reports, a manifest published by one conditional write."""

    def register(
        self,
        name: str,
        artifact: bytes | BinaryIO | transfer.Source,
        info: VersionInfo | None = None,
        *,
        fmt: str = "skops",
        actor: str | None = None,
        idempotency_key: str | None = None,
        operation_key: str | None = None,
        allow_missing_dataset: bool = False,
        snapshot_dataset: bool = True,
        dataset_bytes: bytes | transfer.Source | None = None,
        created_at: datetime | None = None,
        progress: ProgressCallback | None = None,
    ) -> ModelVersion:
        """Register serialised model bytes as the next version of ``name``.

        The bytes are stored content-addressed, then the manifest is created with a create-only write: of
        racing registrants, each gets its own number, with no gaps. The manifest is the record: this returns once
        it has landed, and the ``registered`` event follows in the background, in version order (any read of the
        log in this process waits for it; see ``announcer`` and :meth:`flush`). With an
        ``operation_key`` the event is logged before this returns.

        Args:
            name: model name.
            artifact: serialised model: bytes, or a readable binary stream (spooled to a temporary file while
                hashed, never held whole; see :meth:`register_file` for a file).
            info: metrics, params, tags, description, lineage and gate reports.
            fmt: artifact format (``skops``, ``pickle``, ``joblib`` or ``bytes``).
            actor: who registers (default :func:`default_actor`).
            operation_key: a retry with the same key gets the same version back, whatever point an earlier
                attempt crashed at (every writer's retry key has this name).
            idempotency_key: the old name of ``operation_key``, still accepted with a ``DeprecationWarning``.
            allow_missing_dataset: register even if ``info.lineage.dataset_uri`` cannot be read (with a warning).
            snapshot_dataset: keep the training data in the registry (content-addressed, stored once however many
                versions use it) up to ``PMR_SNAPSHOT_MAX_BYTES`` (default 100 MiB); the lineage says when it was
                not kept and why. ``False`` opts this registration out.
            dataset_bytes: the training data in hand, kept as the snapshot instead of reading ``dataset_uri``
                again (``pmr copy`` passes the source's snapshot); it must match the lineage's fingerprint.
            created_at: when the version was first made, for a history brought from elsewhere (an import);
                with ``info.lineage.copied_from`` set, its ``registered`` event carries this time too.
            progress: called as ``progress(stage, done, total)`` while bytes move (hashing, uploading, ...).

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
        source = transfer.file_source(artifact)
        try:
            return self._register_source(
                name,
                source,
                info,
                fmt=fmt,
                actor=actor,
                idempotency_key=idempotency_key,
                operation_key=operation_key,
                allow_missing_dataset=allow_missing_dataset,
                snapshot_dataset=snapshot_dataset,
                dataset_bytes=dataset_bytes,
                created_at=created_at,
                progress=progress,
            )
        finally:
            source.close()

    def _register_source(
        self,
        name: str,
        source: transfer.Source,
        info: VersionInfo | None,
        *,
        fmt: str,
        actor: str | None = None,
        idempotency_key: str | None = None,
        operation_key: str | None = None,
        allow_missing_dataset: bool = False,
        snapshot_dataset: bool = True,
        dataset_bytes: bytes | transfer.Source | None = None,
        created_at: datetime | None = None,
        progress: ProgressCallback | None = None,
    ) -> ModelVersion:
        """:meth:`register` of bytes already located and hashed (in memory, a file, another store's blob)."""
        check_model_name(name)
        artifacts.check_format(fmt)
        info = check_info(info if info is not None else VersionInfo())
        if idempotency_key is not None:
            warnings.warn("idempotency_key is now operation_key", DeprecationWarning, stacklevel=3)
            if operation_key is not None and idempotency_key != operation_key:
                raise InvalidMetadata("idempotency_key and operation_key differ: give one")
        op_key = check_op_key(operation_key if operation_key is not None else idempotency_key)
        explicit_actor = actor is not None  # a key binds the actor its caller names (see registry.idempotency)
        actor = resolve_actor(actor)
        with source.reader() as fh:  # refuses code-running types before any write
            reviewed = artifacts.review_types(fh, fmt)
        check_flag(snapshot_dataset, "snapshot_dataset")
        snapshots.check_unset(info.lineage)
        if dataset_bytes is not None and not isinstance(dataset_bytes, bytes | transfer.Source):
            raise InvalidMetadata("dataset_bytes must be bytes")
        if created_at is not None and (not isinstance(created_at, datetime) or created_at.tzinfo is None):
            raise InvalidMetadata("created_at must be a timezone-aware datetime")
        dataset, unreadable = self._dataset(info.lineage, dataset_bytes, snapshot_dataset)
        try:
            lineage, data = snapshots.plan(
                complete_lineage(
                    info.lineage,
                    dataset_sha256=dataset.digest if dataset is not None else None,
                    allow_missing_dataset=allow_missing_dataset,
                ),
                enabled=snapshot_dataset,
                dataset=dataset,
                unreadable=unreadable,
            )
            info = info.model_copy(update={"lineage": lineage})
            check_record_sizes(name, info, fmt, source.size, reviewed, actor, op_key, created_at)
            if op_key is None:
                mv = self._register(name, source, info, fmt, actor, None, reviewed, data, created_at, progress)
                # The manifest is the record: its event is logged in the background, in order (see announcer).
                announcer.submit((id(self.store), name), mv.version, versions.announce, self.store, mv)
                return mv
            existing, claim, _ = self._claims.claim_registration(
                name, op_key, request_fingerprint(name, fmt, info), actor=actor, explicit_actor=explicit_actor
            )
            if existing is not None:
                return existing
            try:
                mv = self._register(name, source, info, fmt, actor, op_key, reviewed, data, created_at, progress)
            except BaseException:
                self._claims.abandon(name, op_key, claim)
                raise
            self._claims.finish(name, op_key, claim, mv)
            self._claims.ensure_announced(mv, op_key, int(claim["log_seq"]))
            return mv
        finally:
            if dataset is not None:
                dataset.close()

    @staticmethod
    def _dataset(
        lineage: Lineage, given: bytes | transfer.Source | None, snapshot: bool
    ) -> tuple[transfer.Source | None, str | None]:
        """The training data's bytes, located and hashed once (or why they cannot be read)."""
        if isinstance(given, transfer.Source):
            return given, None
        if given is not None:
            return transfer.Source.of_bytes(given), None
        if not lineage.dataset_uri or (lineage.dataset_fingerprint and not snapshot):
            return None, None
        try:
            return transfer.open_dataset(lineage.dataset_uri), None
        except DatasetUnavailable as exc:
            return None, str(exc)

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
        artifact: transfer.Source,
        info: VersionInfo,
        fmt: str,
        actor: str,
        op_key: str | None,
        reviewed: list[str] | None,
        dataset: transfer.Source | None = None,
        created_at: datetime | None = None,
        progress: ProgressCallback | None = None,
    ) -> ModelVersion:
        # The uploads and the read of where numbering stands are independent: they overlap. The manifest that
        # names the blobs is written only once every upload has landed.
        start = parallel.submit(versions.known_taken, self.store, name)
        uploads = [parallel.submit(transfer.put_source, self.store, artifact, progress)]
        if dataset is not None:  # content-addressed: the same data is stored once
            uploads.append(parallel.submit(transfer.put_source, self.store, dataset))
        gates = list(info.reports)
        pending = [parallel.submit(self._put_report, info.reports[gate]) for gate in gates]
        reused = [upload.result() for upload in uploads]
        reports = {gate: ref.result() for gate, ref in zip(gates, pending, strict=True)}
        manifest_fields: dict[str, Any] = {
            "name": name,
            "artifact": ArtifactRef(
                sha256=artifact.digest,
                size=artifact.size,
                format=fmt,
                key=keys.blob_key(artifact.digest),
                trusted_types=reviewed,
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
        mv = versions.allocate(self.store, name, manifest_fields, start=start.result())
        # A reused blob was not sent: if a sweep deleted it in the instant before the manifest named it, send it
        # now (from here on the manifest keeps it live).
        for source, was_reused in zip([artifact, dataset], reused, strict=False):
            if was_reused and source is not None and self.store.size(keys.blob_key(source.digest)) != source.size:
                transfer.put_source(self.store, source, progress)
        return mv

    def register_model(self, name: str, model: Any, info: VersionInfo | None = None, **kwargs: Any) -> ModelVersion:
        """Serialise a scikit-learn model with skops and :meth:`register` it."""
        check_model_name(name)
        if info is not None:
            check_info(info)
        with tempfile.TemporaryDirectory(prefix="pmr-model-") as tmp:
            path = Path(tmp) / "model.skops"
            artifacts.dump_model_to(model, path)  # to a file: the serialised model is never held in memory too
            return self.register_file(name, path, info, fmt="skops", **kwargs)

    def register_file(
        self,
        name: str,
        path: str | os.PathLike[str],
        info: VersionInfo | None = None,
        *,
        fmt: str | None = None,
        progress: ProgressCallback | None = None,
        **kwargs: Any,
    ) -> ModelVersion:
        """Register a model file (format from its suffix unless ``fmt`` is given), streamed: never read whole.

        The file is hashed in one pass and sent in another (in parts above ``PMR_MULTIPART_THRESHOLD``); a file
        that changes in between is refused. Other arguments as :meth:`register`.
        """
        p = Path(path)
        check_model_name(name)
        fmt = artifacts.check_format(fmt or artifacts.format_for(p))
        if info is not None:
            check_info(info)
        source = transfer.Source.of_path(p, progress)
        if source.size == 0:
            raise InvalidMetadata(f"model file {p} is empty")
        return self._register_source(name, source, info, fmt=fmt, progress=progress, **kwargs)

    def _put_report(self, report: Mapping[str, Any]) -> ReportRef:
        raw = canonical_json(dict(report))
        digest = versions.put_blob(self.store, raw)
        return ReportRef(
            sha256=digest,
            key=keys.blob_key(digest),
            passed=bool(report.get("passed", False)),
            blocking=not report.get("advisory", False),
        )
