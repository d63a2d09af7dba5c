"""Operation keys: a retry with the same key gets the outcome that landed, never a refusal or a duplicate.

Every mutating operation may carry a key. Its claim, ``models/<name>/idempotency/<sha256(key)>.json``, is
written create-only before the operation's first write, holding the log position at that moment
(``log_seq``) and a fingerprint of the request. The event the operation appends carries the key, so:

- **Log-only operations** (promote, aliases, rollback, decisions, reports): a retry reads the claim and looks
  for an event with the key after ``log_seq``; found, it is returned; not found, the operation runs (the log's
  create-only append rules out two attempts both landing). The claim is written only after the request was
  checked against the current state, so a refusal writes nothing.
- **Registration** also allocates a manifest outside the log. The claim names its owner (host, pid, process
  start time); once the manifest exists, the claim records its version. A retry finds the version from the
  claim, or, for a claim whose owner died before recording it, by scanning the versions allocated since
  (``after``); then it appends a missing ``registered`` event exactly once. A claim is taken over with a
  compare-and-swap, so two retries cannot both allocate.

A registration key also binds its caller: the claim records the registrant, and a call that names another actor
(compared as identities, ``same_person``) is an :class:`IdempotencyConflict`, as is other
metadata; so a key someone else took first is never adopted as one's own. A call that names no actor (the default
``user@host`` differs between the hosts a retry may run on) is matched on the request alone.

Why a claim object rather than only the key in the event: scanning a whole log per keyed operation would cost
O(events); the claim bounds the scan to the events since the key was first used. Keys are matched on a
fingerprint of the request, not on artifact bytes: skops output differs from one serialisation to the next.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect_model_registry.registry.core import keys, versions
from prefect_model_registry.registry.core.drafts import Draft, check_event_size
from prefect_model_registry.registry.core.identity import same_person
from prefect_model_registry.registry.core.log import ModelLog
from prefect_model_registry.registry.errors import (
    IdempotencyConflict,
    IntegrityError,
    ObjectNotFound,
    PreconditionFailed,
    VersionNotFound,
)
from prefect_model_registry.registry.events import EventType
from prefect_model_registry.registry.models import Event, ModelState, ModelVersion, VersionInfo, canonical_json, sha256
from prefect_model_registry.registry.store.base import ObjectStore

#: A pending registration claim younger than this, whose owner may be alive, is taken to be in flight.
CLAIM_WAIT_S = 60.0


def request_fingerprint(name: str, fmt: str, info: VersionInfo) -> str:
    """What a retried registration repeats exactly (serialised bytes differ run to run, so not those)."""
    return sha256(
        canonical_json(
            {
                "name": name,
                "format": fmt,
                "metrics": info.metrics,
                "params": info.params,
                "tags": info.tags,
                "description": info.description,
                "dataset": info.lineage.dataset_fingerprint,
            }
        )
    )


def op_fingerprint(op: str, **fields: Any) -> str:
    """Fingerprint of a log-only operation's request (what a retry with the same key must repeat)."""
    return sha256(canonical_json({"op": op, **fields}))


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (with the pid, it names one process), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def current_owner() -> dict[str, Any]:
    """Who is making this attempt: host, pid, process start time and a token unique to the attempt."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "start": _start_time(os.getpid()),
        "token": uuid.uuid4().hex,
    }


def owner_gone(owner: object) -> bool:
    """True when the attempt owning a claim certainly ended (abandoned, or its process on this host died)."""
    if not isinstance(owner, dict):
        return True  # abandoned on purpose, or an older claim without an owner
    if owner.get("host") != socket.gethostname() or not Path("/proc/self/stat").exists():
        return False  # cannot tell: wait for the claim to age
    pid = owner.get("pid")
    return not isinstance(pid, int) or _start_time(pid) != owner.get("start")


class Claims:
    """Operation-key claims of a store."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def key(self, name: str, op_key: str) -> str:
        """Object key of the claim on ``op_key``."""
        return keys.claim_key(name, op_key)

    def read(self, name: str, op_key: str) -> tuple[dict[str, Any], str] | None:
        """The claim on ``op_key`` and its ETag, or None.

        Raises:
            IntegrityError: the claim is unreadable or belongs to another key (altered).

        """
        try:
            obj = self.store.get(self.key(name, op_key))
        except ObjectNotFound:
            return None
        try:
            record = json.loads(obj.data)
        except ValueError:
            raise IntegrityError(f"the claim on operation key {op_key!r} of {name} is corrupt") from None
        if (
            not isinstance(record, dict)
            or record.get("key") != op_key
            or not isinstance(record.get("request"), str)
            or not isinstance(record.get("log_seq", 0), int)
            or not isinstance(record.get("actor", ""), str)
        ):
            raise IntegrityError(f"the claim on operation key {op_key!r} of {name} is altered")
        return record, obj.etag

    def create(self, name: str, op_key: str, record: dict[str, Any]) -> bool:
        """Create the claim; False when one exists already."""
        try:
            self.store.put(self.key(name, op_key), canonical_json(record), create_only=True)
            return True
        except PreconditionFailed:
            return False

    @staticmethod
    def check_request(name: str, op_key: str, record: dict[str, Any], request: str) -> None:
        """Refuse reusing a key for another request."""
        if record["request"] != request:
            raise IdempotencyConflict(
                f"operation key {op_key!r} of {name} was already used for a different {record.get('op', 'register')}"
            )

    # -- log-only operations --------------------------------------------------------------------------
    def append(
        self,
        name: str,
        op_key: str | None,
        op: str,
        request: str,
        plan: Callable[[ModelState], Draft | None],
    ) -> Event | None:
        """Append what ``plan`` builds, at most once per ``op_key`` (see the module docstring)."""
        log = ModelLog(self.store, name)
        if op_key is None:
            return log.append(plan)[0]
        while True:
            found = self.read(name, op_key)
            if found is not None:
                record = found[0]
                self.check_request(name, op_key, record, request)
                return log.append(plan, op_key=op_key, since=int(record.get("log_seq", 0)))[0]
            state = log.state()
            draft = plan(state)
            if draft is None:  # nothing to do (and any refusal raised): write nothing
                return None
            check_event_size(name, draft, op_key)  # an event over the limit is refused before its claim
            record = {"key": op_key, "op": op, "request": request, "log_seq": state.seq, "at": time.time()}
            if self.create(name, op_key, record):
                return log.append(plan, op_key=op_key, since=state.seq)[0]
            # Another attempt with this key claimed it meanwhile: go through its claim.

    # -- registration ---------------------------------------------------------------------------------
    def claim_registration(
        self,
        name: str,
        op_key: str,
        request: str,
        *,
        actor: str | None = None,
        explicit_actor: bool = False,
    ) -> tuple[ModelVersion | None, dict[str, Any], str | None]:
        """Claim ``op_key`` for a new registration, or return the version an earlier attempt made.

        Args:
            name: model name.
            op_key: the registration's key.
            request: :func:`request_fingerprint` of what is registered.
            actor: who registers (recorded in a new claim).
            explicit_actor: the caller named ``actor``: a key claimed by someone else is then a conflict.

        Returns:
            ``(version, claim, etag)``: a version when one landed for the key; otherwise the claim this
            attempt now owns (register under it).

        Raises:
            IdempotencyConflict: the key was claimed for another request, or by another actor.

        """
        owner = current_owner()
        while True:
            found = self.read(name, op_key)
            if found is None:
                record: dict[str, Any] = {
                    "key": op_key,
                    "op": "register",
                    "request": request,
                    "after": versions.latest(self.store, name),
                    "log_seq": ModelLog(self.store, name).state().seq,
                    "at": time.time(),
                    "owner": owner,
                    **({"actor": actor} if actor is not None else {}),
                }
                if self.create(name, op_key, record):
                    return None, record, None
                continue
            record, etag = found
            self.check_request(name, op_key, record, request)
            if "version" in record:
                mv = self._version_of(name, op_key, record)
                if explicit_actor and actor is not None:
                    self._check_actor(name, op_key, mv.created_by, actor)  # the manifest says who registered
                self.ensure_announced(mv, op_key, int(record.get("log_seq", 0)))
                return mv, record, etag
            if explicit_actor and actor is not None and isinstance(record.get("actor"), str):
                self._check_actor(name, op_key, record["actor"], actor)
            if owner_gone(record.get("owner")) or time.time() - float(record.get("at", 0)) > CLAIM_WAIT_S:
                recovered = self.recover(name, op_key, record)
                if recovered is not None:
                    return recovered, record, etag
                taken = {**record, "owner": owner, "at": time.time()}
                try:  # compare-and-swap: of several retries taking over a dead claim, one wins
                    self.store.put(self.key(name, op_key), canonical_json(taken), if_match=etag)
                except PreconditionFailed:
                    continue
                return None, taken, None
            time.sleep(0.2)  # another live attempt with this key is in flight

    @staticmethod
    def _check_actor(name: str, op_key: str, claimed_by: str, actor: str) -> None:
        if not same_person(claimed_by, actor):
            raise IdempotencyConflict(
                f"registration key {op_key!r} of {name} belongs to {claimed_by!r}, not {actor!r}: "
                "a key binds its caller (use your own key)"
            )

    def _version_of(self, name: str, op_key: str, record: dict[str, Any]) -> ModelVersion:
        """The version a finished claim names, checked against its manifest (an altered claim is not trusted)."""
        version = record.get("version")
        try:
            if isinstance(version, int) and not isinstance(version, bool) and version >= 1:
                mv = versions.read_manifest(self.store, name, version)
                if mv.idempotency_key == op_key:
                    return mv
        except (VersionNotFound, IntegrityError):
            pass
        # The claim names a version that is not the key's: find the key's manifest the slow way.
        for number in range(versions.latest(self.store, name), 0, -1):
            try:
                mv = versions.read_manifest(self.store, name, number)
            except (VersionNotFound, IntegrityError):
                continue
            if mv.idempotency_key == op_key:
                return mv
        raise IntegrityError(
            f"the claim on operation key {op_key!r} of {name} names v{version}, which has another key (altered)"
        )

    def recover(self, name: str, op_key: str, record: dict[str, Any]) -> ModelVersion | None:
        """An attempt died after claiming ``op_key``: find the version it made, if it made one."""
        version = max(int(record.get("after", 0)), 0) + 1
        while versions.exists(self.store, name, version):
            try:
                mv = versions.read_manifest(self.store, name, version)
            except IntegrityError:
                version += 1
                continue
            if mv.idempotency_key == op_key:
                self.finish(name, op_key, record, mv)
                self.ensure_announced(mv, op_key, int(record.get("log_seq", 0)))
                return mv
            version += 1
        return None  # it died before allocating: register afresh under the same claim

    def abandon(self, name: str, op_key: str, record: dict[str, Any]) -> None:
        """After a failed attempt, mark its claim ownerless so that a retry recovers at once."""
        try:
            found = self.read(name, op_key)
            if found is not None and "version" not in found[0]:
                self.store.put(self.key(name, op_key), canonical_json({**found[0], "owner": None}), if_match=found[1])
        except (OSError, IntegrityError):
            pass  # best effort: a stale claim is recovered once its owner is gone or it aged

    def ensure_announced(self, mv: ModelVersion, op_key: str, since: int) -> Event:
        """The ``registered`` event of ``mv``, appended if the attempt that made it died before logging it."""
        log = ModelLog(self.store, mv.name)
        for _ in range(2):
            for event in log.events_after(since):
                if event.type == EventType.REGISTERED and event.version == mv.version:
                    log.refresh_snapshot()  # the attempt that logged it may have died before refreshing it
                    return event
            logged = versions.announce(self.store, mv)
            if logged is not None:
                return logged
        # A log from before registrations were logged in order may have logged a higher version first.
        appended, _ = log.append(lambda _st: versions.registered_draft(mv), op_key=op_key, since=since)
        assert appended is not None
        return appended

    def finish(self, name: str, op_key: str, claim: dict[str, Any], mv: ModelVersion) -> None:
        """Record in the claim which version ``op_key`` produced (best effort: the manifest holds the key)."""
        record = {k: v for k, v in claim.items() if k != "owner"}
        record.update(version=mv.version, at=time.time())
        try:
            self.store.put(self.key(name, op_key), canonical_json(record))
        except OSError:
            pass
