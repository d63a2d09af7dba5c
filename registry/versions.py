"""Manifests and version numbers over a store: the internal interface registry, idempotency and verify share.

None of them reaches into another's private methods; each calls these functions with the store.

Versions are dense (1..latest): the manifest's create-only write allocates a number. The ``latest`` hint is
only a cache: it is checked against the manifests before use, and garbage, negative or too-high values are
ignored, so a bad hint can neither make a gap nor a version 0 or below. A process also remembers the highest
number it saw taken (by its own write, or confirmed by a read): a manifest is never removed, so that number stays
taken, and a registration starts just above it without reading anything; if others took numbers since, its
create-only write loses and it gallops to the first free one, exactly as from a lagging hint.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from registry import background, keys
from registry.checks import MAX_VERSION
from registry.errors import IntegrityError, ObjectNotFound, PreconditionFailed, StoreError, VersionNotFound
from registry.log import Draft, ModelLog
from registry.memory import ProcessMemory
from registry.models import Event, ModelVersion, sha256
from registry.store.base import ObjectStore

# Per store object, per model: the highest version number this process knows to be taken.
_taken: ProcessMemory[dict[str, int]] = ProcessMemory(dict)


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

    A plain (not create-only) write: the bytes are uploaded either way, and rewriting the same bytes refreshes
    the object's modification time, which retention's grace period reads: a blob that a write in flight just
    reused is never taken for an old, unreferenced one (see :mod:`registry.retention`).
    """
    digest = sha256(data)
    store.put(keys.blob_key(digest), data)
    return digest


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
    """The lowest free version >= ``start``. Versions are dense, so gallop then bisect."""
    start = max(start, 1)
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
    start only costs a lost create-only write, after which the free number is found by galloping, so versions
    stay dense. The ``latest`` hint is written in the background (:mod:`registry.background`).
    """
    version = (known_taken(store, name) if start is None else start) + 1
    while True:
        mv = ModelVersion(version=version, **fields)
        try:
            store.put(keys.manifest_key(name, version), mv.to_bytes(), create_only=True)
        except PreconditionFailed as lost:
            # Usually the number is taken (412): look from the next one. AWS's 409 only means "retry", so then
            # look again from this one (skipping it unconfirmed could leave a gap).
            if lost.taken:
                saw_taken(store, name, version)
            version = first_free(store, name, version + 1 if lost.taken else version)
            continue
        saw_taken(store, name, version)
        background.submit(_hint_newest, store, name, key=("hint", id(store), name))
        return mv


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


def registered_draft(mv: ModelVersion, actor: str) -> Draft:
    """The ``registered`` event for a manifest (it records the manifest's hash, making it tamper-evident)."""
    data = {
        "manifest_sha256": sha256(mv.to_bytes()),
        "artifact_sha256": mv.artifact.sha256,
        "failed_gates": sorted(g for g, r in mv.reports.items() if r.blocking and not r.passed),
    }
    # A copied or imported version is logged at the time it was first made (its manifest's), not the copy's.
    at = mv.created_at if mv.lineage.copied_from else None
    return Draft("registered", mv.version, actor, mv.description, mv.lineage.flow_run_id, data, at)


def announce(store: ObjectStore, mv: ModelVersion, actor: str, *, op_key: str | None = None, since: int = 0) -> Event:
    """Append the ``registered`` event of ``mv`` (with ``op_key``: at most once, found again on a retry)."""
    draft = registered_draft(mv, actor)
    event, _ = ModelLog(store, mv.name).append(lambda _st: draft, op_key=op_key, since=since)
    assert event is not None
    return event
