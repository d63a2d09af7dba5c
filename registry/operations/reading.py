"""Reading: models, versions, states, history, resolving model URIs and loading artifacts (verified)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect_model_registry.registry.core import (
    artifacts,
    index,
    keys,
    parallel,
    snapshots,
    transfer,
    versions,
)
from prefect_model_registry.registry.core import search as finder
from prefect_model_registry.registry.core import waiting as waits
from prefect_model_registry.registry.core.lifecycle import (
    check_not_deleted,
    rules_of,
)
from prefect_model_registry.registry.core.policy import ApprovalRules, Subject
from prefect_model_registry.registry.core.transfer import ProgressCallback
from prefect_model_registry.registry.errors import (
    AliasNotFound,
    IntegrityError,
    InvalidURI,
    ModelNotFound,
    ObjectNotFound,
    VersionNotFound,
)
from prefect_model_registry.registry.events import EventType
from prefect_model_registry.registry.models import (
    Event,
    ModelState,
    ModelVersion,
)
from prefect_model_registry.registry.names import STAGES, check_model_name, check_stage, parse_model_uri
from prefect_model_registry.registry.operations.base import (
    RegistryBase,
    current_view,
)
from prefect_model_registry.registry.settings import settings

#: Artifacts up to this size are loaded from memory (one read); larger ones through a verified file.
LOAD_IN_MEMORY = 64 * 1024 * 1024
#: A listing of at most this many newest versions reads their manifests directly; a longer one reads the blocks
#: of the listing index that hold them (two or three objects for the newest few hundred of a long model).
DIRECT_READS = 32


class Reading(RegistryBase):
    """Reading: models, versions, states, history, resolving model URIs and loading artifacts (verified)."""

    def models(self) -> list[str]:
        """Names of all registered models, sorted."""
        return [n for n in self.store.list_children(keys.MODELS) if self.store.exists(self.manifest_key(n, 1))]

    def overview(self) -> list[dict[str, Any]]:
        """One plain row per model: latest version, production, staging versions, aliases, last change.

        ``seq`` is the model's last event (its log's length), ``updated_at`` that event's time.

        ``blocked`` names the production and staging versions that may not be promoted, with why (``rejected``,
        ``gate:NAME``): a rejected version in staging is not a candidate.
        """
        rows = []
        for name in self.models():
            state = self._log(name).state()
            staged = [*state.version_in("production"), *state.version_in("staging")]
            rows.append(
                {
                    "name": name,
                    "latest": self.latest_version(name),
                    "production": state.production,
                    "staging": state.version_in("staging"),
                    "blocked": {v: waits.blocked(state, v) for v in staged if state.blocked.get(v)},
                    "aliases": dict(sorted(state.aliases.items())),
                    "updated_at": state.updated_at,
                    "seq": state.seq,
                    "deleted": bool(state.deleted) and len(state.deleted) >= state.registered,
                }
            )
        return rows

    def waiting(self, name: str | None = None, *, paused: Iterable[waits.PausedRun] = ()) -> list[waits.WaitingVersion]:
        """The versions waiting for a reviewer, with their evidence: the one definition ``pmr pending`` uses.

        A staged version the model's policy still needs an approval for production for, and each version a paused
        run waits for a decision on (``paused``: the flows read those from Prefect); never a rejected, gate-blocked
        or deleted version, whatever waits for it. Each entry has the gates' verdicts, the metrics and their deltas
        against the production version's, the paused run's page (``PMR_PREFECT_UI_URL`` builds it when the run
        came without one) and the ``pmr approve`` line. Sorted by model and version.

        Args:
            name: only this model.
            paused: runs paused for a decision (model, version, stage, run id); a run for another model than
                ``name`` is left out, one for a model or version this registry does not hold is kept without evidence.

        Raises:
            ModelNotFound: ``name`` is not registered here.
            IntegrityError: a gate report is missing or altered.

        """
        runs = [r for r in paused if name is None or r.model == name]
        ui_url = settings().prefect_ui_url
        runs = [r if r.url else r.model_copy(update={"url": waits.run_link(r.run_id, ui_url)}) for r in runs]
        models = [check_model_name(name)] if name is not None else self.models()
        found: list[waits.WaitingVersion] = []
        for model in sorted({*models, *(r.model for r in runs)}):
            try:
                state = self.state(model)
            except ModelNotFound:
                if model == name:
                    raise
                state = ModelState(name=model)
            found += self._waiting_of(state, [r for r in runs if r.model == model])
        return sorted(found, key=lambda w: (w.model, w.version, w.stage))

    def _waiting_of(self, state: ModelState, runs: list[waits.PausedRun]) -> list[waits.WaitingVersion]:
        name = state.name
        held = {(r.version, r.stage) for r in runs}
        chosen: list[tuple[int, str, waits.PausedRun | None]] = [
            (r.version, r.stage, r) for r in runs if waits.may_wait(state, r.version)
        ]
        for version in state.version_in("staging"):
            if (version, "production") not in held and waits.may_wait(state, version):
                chosen.append((version, "production", None))
        if not chosen:
            return []
        production = self.get_version(name, state.production) if state.production is not None else None
        found = []
        for version, stage, run in chosen:
            try:
                mv: ModelVersion | None = self.get_version(name, version) if state.registered else None
            except VersionNotFound:
                mv = None
            if run is None and (
                mv is None or not waits.waits_in_registry(state, version, Subject(mv.created_by, mv.artifact.sha256))
            ):
                continue
            reports = self.reports(name, version) if mv is not None else {}
            found.append(waits.entry(state, mv, stage, reports, production, run))
        return found

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

        Versions are dense (1..latest), so the newest ``limit`` are found without listing every key: up to
        ``DIRECT_READS`` are read manifest by manifest, more from the blocks of the listing index that hold them
        (``index``, a cache checked by ``verify``; the last, incomplete block manifest by manifest). Neither
        cost grows with the number of versions older than the page.
        """
        latest = self.latest_version(name)
        if limit is None or limit > DIRECT_READS:
            # Full blocks of versions come from the listing index (a cache of the manifests, see registry.index).
            low = 1 if limit is None else max(1, latest - limit + 1)
            return index.read_range(self.store, name, low, latest)[::-1][:limit]
        numbers = list(range(latest, max(latest - limit, 0), -1))
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(lambda n: self.get_version(name, n), numbers))

    def view(self, name: str, version: int, state: ModelState | None = None) -> ModelVersion:
        """The version with its current description and tags (edits after registration applied).

        The manifest itself never changes (``get_version`` returns it as registered, and ``verify`` checks it);
        ``describe``/``tag``/``untag`` are audit events that reads like this one apply.
        """
        return current_view(self.get_version(name, version), state if state is not None else self.state(name))

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
        state: ModelState | None = None,
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
            state: the model's state when the caller has just read it (else it is read here).

        Raises:
            InvalidMetadata: a malformed condition or sort; InvalidName: a bad stage.

        """
        conditions = [finder.parse_condition(w) for w in where]
        if sort is not None:
            finder.sort_key(sort)
        if stage is not None:
            check_stage(stage)
        state = state if state is not None else self.state(name)
        scan = limit if sort is None and stage is None and not tags and not conditions else None
        gone = set() if include_deleted else set(state.deleted)
        found = [current_view(mv, state) for mv in self.versions(name, limit=scan) if mv.version not in gone]
        chosen = finder.select(found, state.stages, stage=stage, tags=tags, where=conditions, sort=sort)
        return chosen[:limit] if limit is not None else chosen

    def state(self, name: str) -> ModelState:
        """Current stages and aliases of ``name``."""
        self._require_model(name)
        return self._log(name).state()

    def resolve(self, uri: str) -> ModelVersion:
        """The manifest a model URI points at (``models:/churn/7``, ``models:/churn@production``, …).

        Raises:
            InvalidURI: the URI cannot be parsed.
            ModelNotFound: no model of that name is registered.
            VersionNotFound: the model has no such version.
            AliasNotFound: no version carries that alias or stage.

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
        mv = self._resolve_live(uri)
        if mv.artifact.size <= LOAD_IN_MEMORY or mv.artifact.format == "bytes":
            mv, data = self.load_bytes(uri)
            return artifacts.deserialize(
                data, mv.artifact.format, reviewed=mv.artifact.trusted_types, trusted=trusted, allow_pickle=allow_pickle
            )
        if mv.artifact.format in ("pickle", "joblib") and not allow_pickle:
            return artifacts.deserialize(b"", mv.artifact.format)  # refused before any byte is fetched
        with self._artifact_file(mv) as path:
            return artifacts.deserialize_file(path, mv.artifact.format, trusted=trusted, allow_pickle=allow_pickle)

    @contextlib.contextmanager
    def _artifact_file(self, mv: ModelVersion) -> Iterator[Path]:
        """A verified local file of ``mv``'s artifact: the cache's, else a download to a temporary directory."""
        digest = mv.artifact.sha256
        cached = self.cache.file(digest) if self.cache is not None else None
        if cached is not None:
            yield cached
            return
        with tempfile.TemporaryDirectory(prefix="pmr-load-") as tmp:
            path = transfer.download(
                self.store, mv.artifact.key, digest, mv.artifact.size, Path(tmp) / digest, what=f"artifact of {mv.uri}"
            )
            if self.cache is not None:
                self.cache.put_file(digest, path)
            yield path

    def download(
        self,
        uri: str,
        path: str | os.PathLike[str],
        *,
        force: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ModelVersion:
        """Download the artifact of ``uri`` to the file ``path``, verified against the manifest's SHA-256.

        The bytes go to a new file beside ``path``, are hashed there, and take the name only if they match: a
        reader never sees a partial or unverified file. Large artifacts come by parallel ranged reads; memory
        stays bounded whatever the size. A verified copy in the local artifact cache is used when there is one.

        Args:
            uri: model URI (``models:/NAME/VERSION``, ``@alias`` or stage).
            path: the file to write; a symlink there is refused, never followed.
            force: replace an existing file (else one is refused).
            progress: called as ``progress(stage, done, total)``.

        Raises:
            InvalidMetadata: ``path`` exists and ``force`` is not set.
            SymlinkRefused: ``path`` is a symlink.
            IntegrityError: the stored bytes do not match their hash (nothing is left at ``path``).

        """
        mv = self._resolve_live(uri)
        digest = mv.artifact.sha256
        cached = self.cache.file(digest) if self.cache is not None else None
        where = transfer.download(
            self.store,
            mv.artifact.key,
            digest,
            mv.artifact.size,
            path,
            overwrite=force,
            what=f"artifact of {mv.uri}",
            progress=progress,
            cached=cached,
        )
        if self.cache is not None and cached is None:
            self.cache.put_file(digest, where)
        return mv

    def download_dataset(
        self,
        uri: str,
        path: str | os.PathLike[str],
        *,
        force: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ModelVersion:
        """Download the training-data snapshot of ``uri`` to ``path``, verified (as :meth:`download`).

        Raises:
            DatasetUnavailable: the version kept no snapshot (its lineage says why).
            IntegrityError: the snapshot is missing or altered (nothing is left at ``path``).

        """
        mv = self._resolve_live(uri)
        digest = snapshots.digest_of(mv)
        size = mv.lineage.dataset_size or 0
        transfer.download(
            self.store,
            keys.blob_key(digest),
            digest,
            size,
            path,
            overwrite=force,
            what=f"the training-data snapshot of {mv.uri}",
            progress=progress,
        )
        return mv

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

    def scoring_runs(self, name: str, version: int | None = None) -> list[Event]:
        """The ``scored`` events of ``name`` (of one version if given), oldest first."""
        scored = (e for e in self.history(name) if e.type == EventType.SCORED)
        return [e for e in scored if version is None or e.version == version]

    def policy(self, name: str) -> ApprovalRules | None:
        """The approval policy of ``name`` (``None`` when none was set: no stage needs an approval)."""
        self._require_model(name)
        return rules_of(self._log(name).state())
