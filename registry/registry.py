"""The registry: register versions, change stages and aliases, record decisions, resolve and load.

Key layout in the store (one bucket prefix or directory)::

    blobs/sha256/<hash>                         artifact and report bytes, content-addressed
    models/<name>/versions/<n:010d>.json        immutable manifest; its create-only write allocates n
    models/<name>/latest                        hint: a recent version number (may lag, never leads)
    models/<name>/events/<seq:012d>.json        the hash-chained audit log (see registry.log)
    models/<name>/state.json                    snapshot of the replayed log
    models/<name>/reports/<n:010d>/<gate>.json  gate reports recorded after registration
    models/<name>/idempotency/<sha256(key)>.json  which version an idempotency key produced
"""

from __future__ import annotations

import getpass
import json
import math
import os
import socket
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from registry import artifacts
from registry.errors import (
    AliasNotFound,
    ApprovalRefused,
    IntegrityError,
    InvalidMetadata,
    InvalidURI,
    ModelNotFound,
    ObjectNotFound,
    PreconditionFailed,
    VersionNotFound,
)
from registry.idempotency import Claims, request_fingerprint
from registry.lifecycle import plan_rollback, plan_stage_change
from registry.lineage import complete_lineage
from registry.log import Draft, ModelLog
from registry.models import (
    ArtifactRef,
    Event,
    ModelState,
    ModelVersion,
    ReportRef,
    VersionInfo,
    canonical_json,
    sha256,
    utcnow,
)
from registry.names import STAGES, check_alias, check_model_name, check_stage, parse_model_uri
from registry.store.base import ObjectStore, open_store


def default_actor() -> str:
    """Who is acting: ``PMR_ACTOR`` if set, else ``user@host``."""
    env = os.environ.get("PMR_ACTOR")
    if env:
        return env
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _check_info(info: VersionInfo) -> None:
    for key, value in info.metrics.items():
        if not isinstance(key, str) or not key:
            raise InvalidMetadata(f"metric name {key!r} must be a non-empty string")
        if not math.isfinite(value):
            raise InvalidMetadata(f"metric {key!r} is {value}: metrics must be finite numbers")
    for what, value in (("params", info.params), ("reports", info.reports)):
        try:
            canonical_json(value)
        except (TypeError, ValueError) as exc:
            raise InvalidMetadata(f"{what} must be JSON without NaN or inf: {exc}") from None


def _blob_key(digest: str) -> str:
    return f"blobs/sha256/{digest}"


class Registry:
    """A model registry over an :class:`~registry.store.ObjectStore`. No database, no server."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._claims = Claims(self)

    @classmethod
    def open(cls, location: str | os.PathLike[str] | None = None, *, create: bool = True) -> Registry:
        """Open (and check) the registry at ``location``: ``s3://bucket/prefix`` or a directory.

        Raises:
            BucketNotFound, StoreAccessDenied, StoreUnavailable: the store cannot be used.

        """
        store = open_store(location, create=create)
        store.check()
        return cls(store)

    # -- keys -----------------------------------------------------------------------------------------
    @staticmethod
    def manifest_key(name: str, version: int) -> str:
        """Object key of the manifest of ``name`` version ``version``."""
        return f"models/{name}/versions/{version:010d}.json"

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
        allow_missing_dataset: bool = False,
    ) -> ModelVersion:
        """Register serialised model bytes as the next version of ``name``.

        The bytes are stored content-addressed, then the manifest is created with a create-only write: of
        racing registrants, each gets its own number, with no gaps. The ``registered`` event follows.

        Args:
            name: model name.
            artifact: serialised model.
            info: metrics, params, tags, description, lineage and gate reports.
            fmt: artifact format (``skops``, ``pickle``, ``joblib`` or ``bytes``).
            actor: who registers (default :func:`default_actor`).
            idempotency_key: a retry with the same key gets the same version back.
            allow_missing_dataset: register even if ``info.lineage.dataset_uri`` cannot be read (with a warning).

        The lineage is completed as on every registration path (code version, Python and packages, dataset
        fingerprint): see :func:`registry.lineage.complete_lineage`.

        Raises:
            InvalidName, InvalidMetadata: bad input; nothing is written.
            DatasetUnavailable: the lineage names a dataset that cannot be read (see ``allow_missing_dataset``).
            IdempotencyConflict: the key was used before for a registration with other metadata.

        """
        check_model_name(name)
        artifacts.check_format(fmt)
        info = info or VersionInfo()
        _check_info(info)
        if not isinstance(artifact, bytes | bytearray) or not artifact:
            raise InvalidMetadata("artifact must be non-empty bytes")
        info = info.model_copy(
            update={"lineage": complete_lineage(info.lineage, allow_missing_dataset=allow_missing_dataset)}
        )
        actor = actor or default_actor()
        digest = sha256(bytes(artifact))
        claim: dict[str, Any] | None = None
        if idempotency_key is not None:
            existing, claim = self._claims.claim(name, idempotency_key, request_fingerprint(name, fmt, info))
            if existing is not None:
                return existing
        try:
            return self._register(name, bytes(artifact), digest, info, fmt, actor, idempotency_key, claim)
        except BaseException:
            if idempotency_key is not None:
                self._claims.release(name, idempotency_key)
            raise

    def _register(
        self,
        name: str,
        artifact: bytes,
        digest: str,
        info: VersionInfo,
        fmt: str,
        actor: str,
        idempotency_key: str | None,
        claim: dict[str, Any] | None,
    ) -> ModelVersion:
        self._put_blob(artifact, digest)
        reports = {gate: self._put_report(report) for gate, report in info.reports.items()}
        manifest_fields: dict[str, Any] = {
            "name": name,
            "artifact": ArtifactRef(sha256=digest, size=len(artifact), format=fmt, key=_blob_key(digest)),
            "metrics": info.metrics,
            "params": info.params,
            "tags": info.tags,
            "description": info.description,
            "lineage": info.lineage,
            "reports": reports,
            "created_by": actor,
            "created_at": utcnow(),
            "idempotency_key": idempotency_key,
        }
        mv = self._allocate(name, manifest_fields)
        if idempotency_key is not None and claim is not None:
            self._claims.finish(name, idempotency_key, claim, mv)
        self._announce(mv, actor)
        return mv

    def register_model(self, name: str, model: Any, info: VersionInfo | None = None, **kwargs: Any) -> ModelVersion:
        """Serialise a scikit-learn model with skops and :meth:`register` it."""
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

    def _put_blob(self, data: bytes, digest: str) -> None:
        try:
            self.store.put(_blob_key(digest), data, create_only=True)
        except PreconditionFailed:
            pass  # same content already stored: content addressing makes this a no-op

    def _put_report(self, report: Mapping[str, Any]) -> ReportRef:
        raw = canonical_json(report)
        digest = sha256(raw)
        self._put_blob(raw, digest)
        return ReportRef(
            sha256=digest,
            key=_blob_key(digest),
            passed=bool(report.get("passed", False)),
            blocking=not report.get("advisory", False),
        )

    def _allocate(self, name: str, fields: dict[str, Any]) -> ModelVersion:
        version = self._read_hint(name) + 1
        while True:
            mv = ModelVersion(version=version, **fields)
            try:
                self.store.put(self.manifest_key(name, version), mv.to_bytes(), create_only=True)
            except PreconditionFailed:
                # Usually the number is taken (412); AWS's 409 means "retry", so look again from here.
                version = self._first_free(name, version)
                continue
            try:
                self.store.put(f"models/{name}/latest", str(version).encode())
            except OSError:
                pass  # only a hint: the next registrant probes past it
            return mv

    def _read_hint(self, name: str) -> int:
        try:
            return int(self.store.get(f"models/{name}/latest").data)
        except (ObjectNotFound, ValueError):
            return 0

    def _first_free(self, name: str, start: int) -> int:
        """The lowest free version >= ``start``. Versions are dense, so gallop then bisect."""
        if not self.store.exists(self.manifest_key(name, start)):
            return start
        lo, step = start, 1  # lo is taken
        while self.store.exists(self.manifest_key(name, lo + step)):
            lo, step = lo + step, step * 2
        hi = lo + step  # hi is free
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.store.exists(self.manifest_key(name, mid)):
                lo = mid
            else:
                hi = mid
        return hi

    def _announce(self, mv: ModelVersion, actor: str) -> None:
        data = {
            "manifest_sha256": sha256(mv.to_bytes()),
            "artifact_sha256": mv.artifact.sha256,
            "failed_gates": sorted(g for g, r in mv.reports.items() if r.blocking and not r.passed),
        }
        self._log(mv.name).append(
            lambda _state: Draft("registered", mv.version, actor, mv.description, mv.lineage.flow_run_id, data)
        )

    # -- reading --------------------------------------------------------------------------------------
    def models(self) -> list[str]:
        """Names of all registered models, sorted."""
        return [n for n in self.store.list_children("models/") if self.store.exists(self.manifest_key(n, 1))]

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
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidURI(f"version must be a positive integer, not {version!r}")
        try:
            raw = self.store.get(self.manifest_key(name, version)).data
        except ObjectNotFound:
            self._require_model(name)
            raise VersionNotFound(f"{name} has no version {version}") from None
        try:
            mv = ModelVersion.model_validate_json(raw)
        except ValidationError:
            raise IntegrityError(f"manifest of {name} v{version} is corrupt") from None
        if mv.name != name or mv.version != version:
            raise IntegrityError(f"manifest of {name} v{version} describes {mv.name} v{mv.version}")
        return mv

    def latest_version(self, name: str) -> int:
        """The highest version number of ``name``."""
        self._require_model(name)
        return self._first_free(name, max(self._read_hint(name), 1)) - 1

    def versions(self, name: str, *, limit: int | None = None) -> list[ModelVersion]:
        """Manifests of ``name``, newest first; ``limit`` keeps only the newest few.

        Versions are dense (1..latest), so a page of the newest ``limit`` is read directly, without listing
        every key: its cost does not grow with the number of versions.
        """
        latest = self.latest_version(name)
        numbers = list(range(latest, 0 if limit is None else max(latest - limit, 0), -1))
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(lambda n: self.get_version(name, n), numbers))

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
        state = self._log(ref.name).state()
        if state.seq == 0:
            self._require_model(ref.name)
        if ref.label in STAGES:
            if ref.label == "none":
                raise InvalidURI("'@none' names no single version")
            found = state.version_in(ref.label)
            if not found:
                raise AliasNotFound(f"{ref.name} has no version in {ref.label}")
            return self.get_version(ref.name, found[-1])
        version = state.aliases.get(str(ref.label))
        if version is None:
            raise AliasNotFound(f"{ref.name} has no alias {ref.label!r}")
        return self.get_version(ref.name, version)

    def load_bytes(self, uri: str) -> tuple[ModelVersion, bytes]:
        """Resolve ``uri`` and return its manifest and artifact bytes, verified against the manifest hash."""
        mv = self.resolve(uri)
        try:
            data = self.store.get(mv.artifact.key).data
        except ObjectNotFound:
            raise IntegrityError(f"artifact of {mv.uri} is missing from the store") from None
        artifacts.verify_bytes(data, mv.artifact.sha256, f"artifact of {mv.uri}")
        return mv, data

    def load(self, uri: str, *, trusted: Iterable[str] = ()) -> Any:
        """Load the model at ``uri``, refusing bytes whose SHA-256 differs from the manifest."""
        mv, data = self.load_bytes(uri)
        return artifacts.deserialize(data, mv.artifact.format, trusted=trusted)

    def lineage(self, name: str, version: int) -> list[ModelVersion]:
        """The version and its ancestors via ``parent_version``, newest first."""
        chain = [self.get_version(name, version)]
        seen = {version}
        while (parent := chain[-1].lineage.parent_version) is not None and parent not in seen:
            seen.add(parent)
            chain.append(self.get_version(name, parent))
        return chain

    def history(self, name: str) -> list[Event]:
        """Every audit event of ``name``, oldest first (the hash chain is checked on the way)."""
        self._require_model(name)
        return list(self._log(name).events())

    def state_at(self, name: str, when: datetime) -> ModelState:
        """Stages and aliases as they were at ``when``: answers "what was in production at time T?"."""
        self._require_model(name)
        return self._log(name).state_at(when)

    def reports(self, name: str, version: int) -> dict[str, dict[str, Any]]:
        """Gate reports of a version: those stored at registration, then later ones (which win)."""
        mv = self.get_version(name, version)
        found = {gate: json.loads(self.store.get(ref.key).data) for gate, ref in mv.reports.items()}
        prefix = f"models/{name}/reports/{version:010d}/"
        for key in self.store.list(prefix):
            found[key[len(prefix) : -len(".json")]] = json.loads(self.store.get(key).data)
        return found

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
    ) -> Event:
        """Move ``version`` to stage ``to`` in one atomic log append (archiving the old production one).

        Raises:
            InvalidTransition, PromotionBlocked, VersionNotFound, ModelNotFound.

        """
        check_stage(to)
        self.get_version(name, version)
        event, _ = self._log(name).append(
            lambda st: Draft(
                "stage_changed",
                version,
                actor or default_actor(),
                reason,
                run_id,
                plan_stage_change(st, version, to),
            )
        )
        assert event is not None
        return event

    def archive(self, name: str, version: int, **kwargs: Any) -> Event:
        """Archive a version (shorthand for ``promote(..., to="archived")``)."""
        return self.promote(name, version, "archived", **kwargs)

    def rollback(self, name: str, *, actor: str | None = None, reason: str = "", run_id: str | None = None) -> Event:
        """Put back the production version before the current one, archiving the current, atomically.

        Raises:
            NothingToRollBack: no earlier production version in the log.

        """
        self._require_model(name)
        event, _ = self._log(name).append(
            lambda st: Draft(
                "rolled_back",
                plan_rollback(st)["to"],
                actor or default_actor(),
                reason,
                run_id,
                plan_rollback(st),
            )
        )
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
    ) -> Event | None:
        """Point ``alias`` at ``version`` (moving it from wherever it was). ``None`` when already there."""
        check_alias(alias)
        self.get_version(name, version)

        def plan(st: ModelState) -> Draft | None:
            previous = st.aliases.get(alias)
            if previous == version:
                return None
            return Draft(
                "alias_set",
                version,
                actor or default_actor(),
                reason,
                run_id,
                {"alias": alias, "previous": previous},
            )

        return self._log(name).append(plan)[0]

    def remove_alias(
        self, name: str, alias: str, *, actor: str | None = None, reason: str = "", run_id: str | None = None
    ) -> Event:
        """Remove ``alias``.

        Raises:
            AliasNotFound: no version carries it.

        """
        check_alias(alias)
        self._require_model(name)

        def plan(st: ModelState) -> Draft:
            if alias not in st.aliases:
                raise AliasNotFound(f"{name} has no alias {alias!r}")
            return Draft("alias_removed", st.aliases[alias], actor or default_actor(), reason, run_id, {"alias": alias})

        event, _ = self._log(name).append(plan)
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
    ) -> Event | None:
        """Store a gate report beside a version and log the verdict; a failure blocks promotion.

        Recording the very same report again (a flow re-run after a suspend, a retried task) is a no-op and
        returns ``None``.
        """
        self.get_version(name, version)
        if not gate.replace("_", "").replace("-", "").isalnum():
            raise InvalidMetadata(f"invalid gate name {gate!r}")
        try:
            raw = canonical_json(dict(report))
        except (TypeError, ValueError) as exc:
            raise InvalidMetadata(f"report must be JSON without NaN or inf: {exc}") from None
        key = f"models/{name}/reports/{version:010d}/{gate}.json"
        try:
            if self.store.get(key).data == raw:
                return None
        except ObjectNotFound:
            pass
        self.store.put(key, raw)
        failed = [c.get("name") for c in report.get("checks", []) if isinstance(c, dict) and not c.get("passed")]
        reason = "" if passed else "failed checks: " + ", ".join(str(f) for f in failed[:5])
        data = {"gate": gate, "passed": passed, "report_sha256": sha256(raw)}
        return self._log(name).append(
            lambda _st: Draft("validated", version, actor or default_actor(), reason, run_id, data)
        )[0]

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
    ) -> Event:
        """Log a reviewer's approval or rejection of ``version``; a rejection blocks promotion.

        Raises:
            ApprovalRefused: the reviewer is not allowed, or is the registrant while four-eyes is on.
            InvalidMetadata: no reviewer, or a rejection without a comment.

        """
        mv = self.get_version(name, version)
        reviewer = (reviewer or "").strip()
        if not reviewer:
            raise InvalidMetadata("a decision needs the reviewer's name")
        if not approved and not comment.strip():
            raise InvalidMetadata("a rejection needs a comment saying why")
        allowed = set(allowed_reviewers) if allowed_reviewers is not None else None
        if allowed is not None and reviewer not in allowed:
            raise ApprovalRefused(f"{reviewer!r} is not an allowed reviewer of {name}")
        if four_eyes and reviewer == mv.created_by:
            raise ApprovalRefused(f"four-eyes rule: {reviewer!r} registered {name} v{version} and cannot approve it")
        kind = "approved" if approved else "rejected"
        event, _ = self._log(name).append(
            lambda _st: Draft(kind, version, reviewer, comment, run_id, {"target_stage": target_stage})
        )
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
    ) -> Event:
        """Log that an approval wait ended with no decision (the version keeps its stage)."""
        self.get_version(name, version)
        event, _ = self._log(name).append(
            lambda _st: Draft("approval_timed_out", version, actor or default_actor(), reason, run_id, {})
        )
        assert event is not None
        return event
