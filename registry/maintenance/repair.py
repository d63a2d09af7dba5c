"""``pmr verify --repair``: clean what is safe to clean, from what ``verify`` found.

Safe means: nothing that is history. Temporary files and orphan blobs older than a grace period (younger ones
may belong to a write in flight), stale registration claims (finished if their version exists, else dropped),
an unusable ``latest`` hint (a cache), listing-index segments that do not match the manifests (a cache that
listings rebuild), the claim of a version registered with a key whose claim was lost (rebuilt from the
manifest), and an empty object at the end of a log (a PUT whose body never came, which no writer was told had
succeeded and no event follows). Manifests, events and snapshots are never touched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial

from prefect_model_registry.registry.core import keys, transfer, versions
from prefect_model_registry.registry.errors import RegistryError
from prefect_model_registry.registry.maintenance.verify import Finding, registration_request, verify
from prefect_model_registry.registry.models import canonical_json
from prefect_model_registry.registry.registry import Registry

#: Orphan blobs and temporary files younger than this may belong to a write in flight: repair leaves them.
REPAIR_GRACE_S = 3600.0

#: Findings repair never acts on, with what a person must do instead.
NEEDS_A_PERSON = {
    "symlink": "repair never follows it: move the link away and recreate the directory (empty) in the registry",
    "event_malformed": "the registry never rewrites history: restore this event's original bytes from a backup (only"
    " they fit the next event's prev_hash); without a backup the model stays unreadable past it, and an operator"
    " must decide (e.g. retire the model and register its versions again under a new name)",
}


def repair(
    reg: Registry, *, apply: bool = False, grace_s: float = REPAIR_GRACE_S, now: Callable[[], float] = time.time
) -> list[dict[str, str]]:
    """Clean what is safe to clean; with ``apply=False`` (the default) only say what would be done.

    Never touches a manifest, an existing event or a snapshot. Actions: delete temporary files and orphan blobs
    older than ``grace_s``; finish or drop stale registration claims; delete an unusable ``latest`` hint;
    recreate the claim of a version registered with a key whose claim was lost; log the ``registered`` event of
    a version whose registrant died before logging it (what the model's next registration would do); delete an
    empty object at the end of a log, left by a PUT whose body never came.

    Returns:
        One ``{"action", "key", "why"}`` per action (done, or to be done).

    """
    actions: list[dict[str, str]] = []

    def act(action: str, key: str, why: str, do: Callable[[], object]) -> None:
        actions.append({"action": action, "key": key, "why": why})
        if apply:
            do()

    report = verify(reg)
    logged: set[str] = set()
    for name, age in reg.store.temp_files():
        if age > grace_s:
            act(
                "delete",
                f".tmp/{name}",
                "temporary file of an interrupted write",
                partial(reg.store.remove_temp, name),
            )
    for name, age in reg.store.unfinished_uploads():
        if age > grace_s:
            act("abort", name, "multipart upload nobody finished", partial(reg.store.abort_upload, name))
    for finding in report.findings:
        if finding.kind == "orphan_blob":
            blob_age = transfer.age(reg.store, finding.key, now())  # a reuse marker counts as a write
            if blob_age is not None and blob_age > grace_s:
                act("delete", finding.key, "orphan blob", partial(reg.store.delete, finding.key))
        elif finding.kind in ("index_altered", "index_unusable"):
            why = "listing-index segment that does not match the manifests (a cache: listings rebuild it)"
            act("delete", finding.key, why, partial(reg.store.delete, finding.key))
        elif finding.kind in ("log_index_altered", "log_index_unusable"):
            why = "log-index block that does not match the events (a cache: full reads of the log pack it again)"
            act("delete", finding.key, why, partial(reg.store.delete, finding.key))
        elif finding.kind == "hint_invalid":
            act("delete", finding.key, "unusable latest hint (a cache)", partial(reg.store.delete, finding.key))
        elif finding.kind == "unannounced" and finding.model not in logged:
            logged.add(finding.model)
            why = "registered event its registrant did not log (the log catches up, in version order)"
            act("log", finding.model, why, partial(versions.log_unlogged, reg.store, finding.model))
        elif finding.kind == "event_torn":
            why = "empty event object at the end of the log: a write that never completed (no writer saw it succeed)"
            act("delete", finding.key, why, partial(_delete_if_empty, reg, finding.key))
        elif finding.kind == "stale_claim":
            _repair_claim(reg, finding, act)
        elif finding.kind == "claim_missing" and finding.key.startswith(keys.versions_prefix(finding.model)):
            _recreate_claim(reg, finding, act)
        elif finding.kind in NEEDS_A_PERSON:
            # Nothing here is safe to do automatically: say what a person must do; applying changes nothing.
            act("needs a person", finding.key, f"{finding.problem}; {NEEDS_A_PERSON[finding.kind]}", lambda: None)
    return actions


def _delete_if_empty(reg: Registry, key: str) -> None:
    if not reg.store.get(key).data:  # read again: only ever an empty object, never an event
        reg.store.delete(key)


def _repair_claim(reg: Registry, finding: Finding, act: Callable[[str, str, str, Callable[[], object]], None]) -> None:
    record = json.loads(reg.store.get(finding.key).data)
    for number in range(max(int(record.get("after", 0)), 0) + 1, versions.latest(reg.store, finding.model) + 1):
        try:
            mv = versions.read_manifest(reg.store, finding.model, number)
        except RegistryError:
            continue
        if mv.idempotency_key == record["key"]:
            done = canonical_json({k: v for k, v in record.items() if k != "owner"} | {"version": number})
            act(
                "finish",
                finding.key,
                f"stale claim; its version v{number} exists",
                partial(reg.store.put, finding.key, done),
            )
            return
    act("delete", finding.key, "stale claim that made no version", lambda: reg.store.delete(finding.key))


def _recreate_claim(
    reg: Registry, finding: Finding, act: Callable[[str, str, str, Callable[[], object]], None]
) -> None:
    number = keys.parse_number(finding.key, keys.versions_prefix(finding.model))
    if number is None:
        return
    mv = versions.read_manifest(reg.store, finding.model, number)
    assert mv.idempotency_key is not None
    record = {
        "key": mv.idempotency_key,
        "op": "register",
        "request": registration_request(mv),
        "after": number - 1,
        "log_seq": 0,
        "at": time.time(),
        "version": number,
    }
    key = keys.claim_key(mv.name, mv.idempotency_key)
    act(
        "create",
        key,
        f"claim of v{number} was lost",
        lambda: reg.store.put(key, canonical_json(record), create_only=True),
    )
