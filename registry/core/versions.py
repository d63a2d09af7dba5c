"""Manifests and version numbers over a store: the internal interface registry, idempotency and verify share.

None of them reaches into another's private methods; each calls these functions with the store.

Versions are dense (1..latest): the manifest's create-only write allocates a number. The ``latest`` hint is
only a cache: it is checked against the manifests before use, and garbage, negative or too-high values are
ignored, so a bad hint can neither make a gap nor a version 0 or below. A process also remembers the highest
number it saw taken (by its own write, or confirmed by a read): a manifest is never removed, so that number stays
taken, and a registration starts just above it without reading anything; if others took numbers since, its
create-only write loses, and it waits for the others to pause and then tries the first free number (see
``allocate``), exactly as from a lagging hint.
"""

from __future__ import annotations

import os
import random
import socket
import time
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from prefect_model_registry.registry.core import background, keys
from prefect_model_registry.registry.core.checks import MAX_VERSION
from prefect_model_registry.registry.core.drafts import Draft
from prefect_model_registry.registry.core.log import ModelLog
from prefect_model_registry.registry.core.memory import ProcessMemory
from prefect_model_registry.registry.errors import (
    ConcurrencyError,
    IntegrityError,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
    VersionNotFound,
)
from prefect_model_registry.registry.models import Event, ModelState, ModelVersion, sha256
from prefect_model_registry.registry.store.base import ObjectStore

# Per store object, per model: the highest version number this process knows to be taken.
_taken: ProcessMemory[dict[str, int]] = ProcessMemory(dict)
# Per store object, per model: manifests this process created whose events may not be logged yet (by version).
_mine: ProcessMemory[dict[str, dict[int, ModelVersion]]] = ProcessMemory(dict)
# Per store object: blob keys this process uploaded, with when (oldest first).
_uploads: ProcessMemory[dict[str, float]] = ProcessMemory(dict)

#: Bytes uploaded by this process this recently are not uploaded again (far below retention's 1 h grace).
REUSE_S = 60.0
#: How many recent uploads a process remembers per store.
REUSE_MAX = 256
#: A registrant that lost a number waits for the others to pause before it tries again (see ``_await_turn``):
#: it looks after a jittered pause that doubles per loss from CLAIM_BACKOFF_S up to CLAIM_BACKOFF_MAX_S, and
#: tries the first free number only if nobody took it within QUIET_S (or three round trips, up to QUIET_MAX_S,
#: on a slower store): a writer registering on takes its next number a round trip after its last. After
#: TURN_PATIENCE_S of waiting it races for the number instead.
CLAIM_BACKOFF_S = 0.005
CLAIM_BACKOFF_MAX_S = 0.05
QUIET_S = 0.01
QUIET_MAX_S = 0.25
TURN_PATIENCE_S = 2.0
#: Manifest keys per listing page when looking for the first free number.
LIST_PAGE = 100


def seen_taken(store: ObjectStore, name: str) -> int | None:
    """The highest version this process saw taken (by its own write, or confirmed by a read), if any."""
    seen = _taken.of(store)
    with _taken.lock:
        return seen.get(name)


def saw_taken(store: ObjectStore, name: str, version: int) -> None:
    """Remember that ``version`` of ``name`` exists (manifests are never removed: it stays taken)."""
    seen = _taken.of(store)
    with _taken.lock:
        if version > seen.get(name, 0):
            seen[name] = version


def put_blob(store: ObjectStore, data: bytes) -> str:
    """Store ``data`` content-addressed and return its SHA-256.

    A plain (not create-only) write: rewriting the same bytes refreshes the object's modification time, which
    retention's grace period reads, so a blob that a write in flight just reused is never taken for an old,
    unreferenced one (see ``retention``). Bytes this process itself uploaded less than
    :data:`REUSE_S` ago are not uploaded again: their object is that young already, far inside the grace period.
    """
    digest = sha256(data)
    key = keys.blob_key(digest)
    if _uploaded_lately(store, key):
        return digest
    store.put(key, data)
    uploaded = _uploads.of(store)
    with _uploads.lock:
        uploaded.pop(key, None)  # to the end: eviction below drops the oldest upload
        uploaded[key] = time.monotonic()
        while len(uploaded) > REUSE_MAX:
            uploaded.pop(next(iter(uploaded)))
    return digest


def _uploaded_lately(store: ObjectStore, key: str) -> bool:
    uploaded = _uploads.of(store)
    with _uploads.lock:
        at = uploaded.get(key)
        return at is not None and time.monotonic() - at < REUSE_S


def read_manifest(store: ObjectStore, name: str, version: int) -> ModelVersion:
    """The manifest of ``name`` v``version``.

    Raises:
        VersionNotFound: no such manifest.
        IntegrityError: unreadable, or it describes another version.

    """
    try:
        raw = store.get(keys.manifest_key(name, version)).data
    except ObjectNotFound:
        raise VersionNotFound(f"{name} has no version {version}") from None
    return parse_manifest(name, version, raw)


def parse_manifest(name: str, version: int, raw: bytes) -> ModelVersion:
    """Parse the stored manifest of ``name`` v``version``.

    Raises:
        IntegrityError: unreadable, or it describes another version.

    """
    try:
        mv = ModelVersion.model_validate_json(raw)
    except (ValidationError, ValueError):
        raise IntegrityError(f"manifest of {name} v{version} is corrupt") from None
    if mv.name != name or mv.version != version:
        raise IntegrityError(f"manifest of {name} v{version} describes {mv.name} v{mv.version}")
    return mv


def exists(store: ObjectStore, name: str, version: int) -> bool:
    """Whether the manifest of v``version`` exists."""
    return store.exists(keys.manifest_key(name, version))


def read_hint(store: ObjectStore, name: str) -> int | None:
    """The raw ``latest`` hint if it parses as a plausible version number, else None (never trusted)."""
    try:
        raw = store.get(keys.hint_key(name)).data
    except ObjectNotFound:
        return None
    text = raw.decode("ascii", "replace").strip()
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_VERSION else None


def first_free(store: ObjectStore, name: str, start: int) -> int:
    """The lowest free version >= ``start``.

    Where the store lists in one request (S3), the manifests from ``start`` on are listed a page at a time and
    the first missing number is free: after a lost claim that is one request, however far the winners got.
    Elsewhere versions are dense, so it gallops then bisects with existence checks. Either way the answer is
    only a candidate: a number taken meanwhile (or one a lagging listing missed) loses its create-only write.
    """
    start = max(start, 1)
    prefix = keys.versions_prefix(name)
    after = keys.manifest_key(name, start - 1) if start > 1 else None
    while (page := store.keys_after(prefix, after, LIST_PAGE)) is not None:
        for key in page:
            number = keys.parse_number(key, prefix)
            if number is None or number < start:
                continue  # not a manifest (nothing else is written there)
            if number > start:
                return start
            start += 1
        if len(page) < LIST_PAGE:
            return start
        after = page[-1]
    return _gallop(store, name, start)


def _gallop(store: ObjectStore, name: str, start: int) -> int:
    if not exists(store, name, start):
        return start
    lo, step = start, 1  # lo is taken
    while exists(store, name, lo + step):
        lo, step = lo + step, step * 2
    hi = lo + step  # hi is free
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if exists(store, name, mid):
            lo = mid
        else:
            hi = mid
    return hi


def latest(store: ObjectStore, name: str) -> int:
    """The highest version of ``name`` (0 when none), found from the manifests; the hint only saves reads.

    A hint that names an existing manifest is galloped forward from (it may lag); one that names a missing
    manifest (set ahead, or garbage that parsed) is only an upper bound to bisect below.
    """
    hint = read_hint(store, name)
    if hint is not None and exists(store, name, hint):
        return first_free(store, name, hint + 1) - 1
    if hint is None or hint <= 1:
        return first_free(store, name, 1) - 1
    lo, hi = 0, hint  # lo exists (or is 0), hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if exists(store, name, mid):
            lo = mid
        else:
            hi = mid
    return lo


def known_taken(store: ObjectStore, name: str) -> int:
    """A version number known to exist, close to the latest (0 when none).

    What this process saw taken, else the hint once confirmed, else the latest found from the manifests.
    """
    seen = seen_taken(store, name)
    if seen is not None:
        return seen
    hint = read_hint(store, name)
    found = hint if hint is not None and exists(store, name, hint) else latest(store, name)
    if found:
        saw_taken(store, name, found)
    return found


def allocate(
    store: ObjectStore,
    name: str,
    fields: dict[str, Any],
    *,
    start: int | None = None,
) -> ModelVersion:
    """Create the manifest at the first free number (create-only: of racing writers each gets its own).

    It starts just above a number known to be taken (``start``, when the caller read it already); a lagging
    start only costs a lost create-only write, after which the first free number is found from the manifests
    (see :func:`first_free`), so versions stay dense; a lost claim first waits for the other writers to pause
    (see :func:`_await_turn`). The ``latest`` hint is written in the background (``background``).
    """
    version = (known_taken(store, name) if start is None else start) + 1
    losses, patient_until = 0, time.monotonic() + TURN_PATIENCE_S
    while True:
        mv = ModelVersion(version=version, **fields)
        try:
            store.put(keys.manifest_key(name, version), mv.to_bytes(), create_only=True)
        except PreconditionFailed as lost:
            # Usually the number is taken (412): look from the next one. AWS's 409 only means "retry", so then
            # look again from this one (skipping it unconfirmed could leave a gap).
            if lost.taken:
                saw_taken(store, name, version)
            losses += 1
            version = _await_turn(store, name, version + 1 if lost.taken else version, losses, patient_until)
            continue
        saw_taken(store, name, version)
        mine = _mine.of(store)
        with _mine.lock:
            mine.setdefault(name, {})[version] = mv
        background.submit(_hint_newest, store, name, key=("hint", id(store), name))
        return mv


def _await_turn(store: ObjectStore, name: str, free: int, losses: int, patient_until: float) -> int:
    """After a lost claim: wait until the other writers pause, then return the first free number (>= ``free``).

    ``free - 1`` is taken. After each pause (jittered, doubling per loss up to :data:`CLAIM_BACKOFF_MAX_S`) the
    first free number is listed, and returned only if nobody takes it within :data:`QUIET_S`, or three times
    the listing's round trip if longer (a writer registering on takes its next number about a round trip after
    its last): while another writer registers on, this one keeps out of its way instead of colliding with it
    (one writer at a time runs at the uncontended rate, and a look costs two small reads instead of a lost
    write and what follows it). The round trip, not the lost write's time, sets the window: a lost write can
    sit in a server's lock.
    Past ``patient_until`` it returns the number at once, to race for it: a writer is never starved by others
    that keep registering.
    """
    while True:
        time.sleep(random.uniform(0, min(CLAIM_BACKOFF_MAX_S, CLAIM_BACKOFF_S * 2**losses)))
        looked = time.monotonic()
        free = first_free(store, name, free)
        now = time.monotonic()
        if now > patient_until:
            return free
        time.sleep(min(max(QUIET_S, 3 * (now - looked)), QUIET_MAX_S))
        if not exists(store, name, free):
            return free
        free, losses = free + 1, losses + 1


def _hint_newest(store: ObjectStore, name: str) -> None:
    newest = seen_taken(store, name)
    if newest:
        write_hint(store, name, newest)


def write_hint(store: ObjectStore, name: str, version: int) -> None:
    """Best effort: the hint is a cache, and a failure here must not fail a registration that landed."""
    try:
        store.put(keys.hint_key(name), str(version).encode())
    except (StoreError, OSError):
        pass


def registered_draft(mv: ModelVersion) -> Draft:
    """The ``registered`` event for a manifest (it records the manifest's hash, making it tamper-evident).

    Everything in it comes from the manifest (the actor is its ``created_by``), so whichever process logs it
    writes the same event (one logged on behalf of its registrant adds ``logged_by``: see :func:`announce`).
    """
    data = {
        "manifest_sha256": sha256(mv.to_bytes()),
        "artifact_sha256": mv.artifact.sha256,
        "failed_gates": sorted(g for g, r in mv.reports.items() if r.blocking and not r.passed),
    }
    # A copied or imported version is logged at the time it was first made (its manifest's), not the copy's.
    at = mv.created_at if mv.lineage.copied_from else None
    return Draft(
        "registered", mv.version, mv.created_by, mv.description, mv.lineage.flow_run_id, data, at, mv.idempotency_key
    )


def announce(store: ObjectStore, mv: ModelVersion, *, late: bool = False) -> Event | None:
    """Log the ``registered`` event of ``mv`` and, first, of every version below it the log still lacks.

    Registrations are logged in version order: the log's ``registered`` count is the highest version it has
    logged, and each append logs the one after it: from the manifest this process holds when it registered that
    version itself (a newer announcement supersedes a waiting one, see ``announcer``), else by reading
    it (a registrant that died before logging it, or whose event another process is about to write: of two
    writers of one event, the second finds it logged and stops). A manifest that cannot be read is skipped
    (``verify`` reports it), so damage below never stops a registration from being logged.

    A version logged on behalf of another registrant (and ``mv`` too, when ``late``) carries the time its
    manifest was made, not the time it was logged.

    Returns:
        The event of ``mv`` if this call wrote it; None if it was logged already.

    """
    log = ModelLog(store, mv.name)
    mine = _mine.of(store)
    with _mine.lock:
        held: dict[int, ModelVersion] = dict(mine.get(mv.name, {}))
    held[mv.version] = mv

    def plan(state: ModelState) -> Draft | None:
        if state.registered >= mv.version:
            return None
        below = state.registered + 1
        if below not in held:
            try:
                held[below] = read_manifest(store, mv.name, below)
            except (VersionNotFound, IntegrityError):
                below = mv.version
        draft = registered_draft(held[below])
        if below != mv.version or late:
            # Logged for its registrant: at the manifest's time, naming the process that logged it. That also
            # keeps two processes catching up from writing identical bytes, the one race a HEAD cannot settle
            # early (see registry.store.s3_direct): the loser would wait out the server's lock.
            at = draft.at if draft.at is not None else held[below].created_at
            assert draft.data is not None  # registered_draft always records the manifest's hashes
            draft = replace(draft, at=at, data={**draft.data, "logged_by": f"{socket.gethostname()}:{os.getpid()}"})
        return draft

    logged = 0
    try:
        while True:
            event, state = log.append(plan)
            logged = state.registered
            if event is None or event.version == mv.version:
                return event
    finally:
        with _mine.lock:  # what the log holds now needs no manifest kept for it
            own = mine.get(mv.name, {})
            for version in [v for v in own if v <= logged]:
                del own[version]


def log_unlogged(store: ObjectStore, name: str) -> None:
    """Log the ``registered`` events the log of ``name`` lacks (registrants that died before logging theirs).

    One existence check when nothing is missing. Best effort: on a store this process may not write to, or
    past damage, the log stays as it is and ``verify`` says what is missing.
    """
    try:
        logged = ModelLog(store, name).state().registered
        if not exists(store, name, logged + 1):
            return
        newest = read_manifest(store, name, first_free(store, name, logged + 1) - 1)
        announce(store, newest, late=True)
    except (StoreError, IntegrityError, VersionNotFound, ConcurrencyError, OSError):
        pass
