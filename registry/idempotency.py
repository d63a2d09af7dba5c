"""Idempotent registration: a retry with the same idempotency key gets the first version back.

A claim on the key is written create-only before the version is allocated, with the log position at that
moment; once the version exists the claim records it. A retry after a crash finds the version from the claim
(or, for a claim that never got its version, by scanning the versions allocated since) and appends a missing
``registered`` event exactly once. Keys are matched on a fingerprint of the request, not on the artifact
bytes: skops output differs from one serialisation to the next.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from registry.errors import IdempotencyConflict, PreconditionFailed
from registry.models import ModelVersion, VersionInfo, canonical_json, sha256

if TYPE_CHECKING:
    from registry.registry import Registry

#: A pending claim younger than this is taken to be in flight: wait for it.
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


class Claims:
    """Idempotency claims of one registry, under ``models/<name>/idempotency/<sha256(key)>.json``."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg

    def key(self, name: str, key: str) -> str:
        """Object key of the claim on ``key``."""
        return f"models/{name}/idempotency/{sha256(key.encode())}.json"

    def claim(self, name: str, key: str, request: str) -> tuple[ModelVersion | None, dict[str, Any]]:
        """Claim ``key`` for a new registration, or return the version an earlier attempt made."""
        claim = {
            "key": key,
            "request": request,
            "after": self.reg._read_hint(name),
            "log_seq": self.reg._log(name).state().seq,
            "at": time.time(),
        }
        try:
            self.reg.store.put(self.key(name, key), canonical_json(claim), create_only=True)
            return None, claim
        except PreconditionFailed:
            pass
        while True:
            record = json.loads(self.reg.store.get(self.key(name, key)).data)
            if record["request"] != request:
                raise IdempotencyConflict(
                    f"idempotency key {key!r} was already used for a registration with other metadata"
                )
            if "version" in record:
                mv = self.reg.get_version(name, record["version"])
                self.ensure_announced(mv, record.get("log_seq", 0))
                return mv, record
            if time.time() - record["at"] > CLAIM_WAIT_S:
                return self.recover(name, key, record), record
            time.sleep(0.5)  # another attempt with this key is in flight

    def recover(self, name: str, key: str, record: dict[str, Any]) -> ModelVersion | None:
        """An attempt died after claiming ``key``: find the version it made, if it made one."""
        version = record["after"] + 1
        while self.reg.store.exists(self.reg.manifest_key(name, version)):
            mv = self.reg.get_version(name, version)
            if mv.idempotency_key == key:
                self.finish(name, key, record, mv)
                self.ensure_announced(mv, record.get("log_seq", 0))
                return mv
            version += 1
        return None  # it died before allocating: register afresh under the same claim

    def release(self, name: str, key: str) -> None:
        """After a failed attempt, drop a claim that names no version so a retry need not wait for it."""
        try:
            record = json.loads(self.reg.store.get(self.key(name, key)).data)
            if "version" not in record:
                self.reg.store.delete(self.key(name, key))
        except (OSError, ValueError):
            pass  # best effort: a stale claim is recovered after CLAIM_WAIT_S

    def ensure_announced(self, mv: ModelVersion, since_seq: int) -> None:
        """Append the ``registered`` event if the attempt that made ``mv`` died before logging it."""
        log = self.reg._log(mv.name)
        for event in log.events_after(since_seq):
            if event.type == "registered" and event.version == mv.version:
                return
        self.reg._announce(mv, mv.created_by)

    def finish(self, name: str, key: str, claim: dict[str, Any], mv: ModelVersion) -> None:
        """Record in the claim which version ``key`` produced."""
        record = {**claim, "version": mv.version, "at": time.time()}
        self.reg.store.put(self.key(name, key), canonical_json(record))
