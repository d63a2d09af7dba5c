"""A per-model listing index: the manifests of each full block of versions, packed into one object.

Listing or searching every version of a model otherwise reads one manifest per version. Manifests never change
once written, so the manifests of a full block (``SEGMENT`` consecutive versions) can be packed, byte for byte,
into one object, written create-only once the whole block exists and never rewritten:
``models/<name>/index/<first:010d>.json``. Listing 10,000 versions then reads ~40 objects (in parallel) plus
the manifests of the last, incomplete block.

It is only a cache of the manifests. A segment is used only when it parses, names this model and block, and
every entry parses as the manifest of the version it stands for; anything else is ignored and the manifests
are read instead. Only listing and search read it: ``get_version``, ``resolve``, ``load`` and every write read
the manifests and the log. ``verify`` checks every entry against the manifest hash its ``registered`` event
recorded (``index_altered``) and ``verify --repair --apply`` deletes a bad segment, which the next listing
writes again from the manifests. Readers write missing segments (best effort), so the first full listing
after a block fills pays for it once.

Parsing is what a long listing costs once the reads are parallel (about 20 µs per manifest). A process keeps
the manifests it parsed from an index object together with that object's ETag, and reuses them only while the
object still has that ETag (a metadata-only read, in parallel): a rewritten, repaired or tampered object is read
and checked again. Only parsed index objects are kept, a bounded number of them.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from prefect_model_registry.registry.core import keys, parallel, versions
from prefect_model_registry.registry.core.memory import ProcessMemory
from prefect_model_registry.registry.errors import ObjectNotFound, PreconditionFailed, StoreError, VersionNotFound
from prefect_model_registry.registry.models import ModelVersion
from prefect_model_registry.registry.store.base import ObjectStore

#: Versions per segment. 256 manifests of a few KiB: one object of well under a MiB.
SEGMENT = 256
#: A listing that had to read at least this many manifests past the tail rewrites the tail.
TAIL_REFRESH = 16
#: Parsed index objects a process keeps (per store object): 64 segments hold 16,384 manifests.
KEEP_PARSED = 64

T = TypeVar("T")

# Per store object: (key, first version) -> (ETag, what was parsed from the object with that ETag).
_parsed: ProcessMemory[OrderedDict[tuple[str, int], tuple[str, Any]]] = ProcessMemory(OrderedDict)


def index_prefix(name: str) -> str:
    """Key prefix of a model's index segments."""
    return f"{keys.model_prefix(name)}index/"


def segment_key(name: str, first: int) -> str:
    """Key of the segment that starts at version ``first``."""
    return f"{index_prefix(name)}{first:010d}.json"


def segment_starts(latest: int) -> list[int]:
    """First versions of the full segments among versions 1..``latest``."""
    return list(range(1, latest - SEGMENT + 2, SEGMENT))


def _entries(name: str, first: int, raw: bytes, limit: int) -> list[tuple[str, ModelVersion]] | None:
    """The (raw manifest, manifest) pairs of an index object for versions ``first``.., at most ``limit``.

    None unless every one parses as the manifest of the version it stands for.
    """
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    entries = body.get("manifests") if isinstance(body, dict) else None
    if body.get("name") != name or body.get("first") != first or not isinstance(entries, list):
        return None
    out = []
    for offset, text in enumerate(entries[:limit]):
        try:
            mv = ModelVersion.model_validate_json(text) if isinstance(text, str) else None
        except (ValidationError, ValueError):
            return None
        if mv is None or mv.name != name or mv.version != first + offset:
            return None
        out.append((text, mv))
    return out


def parse_segment(name: str, first: int, raw: bytes) -> list[tuple[str, ModelVersion]] | None:
    """The (raw manifest, manifest) pairs of a segment, or None when it does not hold up."""
    found = _entries(name, first, raw, SEGMENT + 1)
    return found if found is not None and len(found) == SEGMENT else None


def build_segment(name: str, first: int, manifests: list[bytes]) -> bytes:
    """The segment object for versions ``first``.. from their raw manifests (in version order)."""
    body = {"name": name, "first": first, "manifests": [m.decode("utf-8") for m in manifests]}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def tail_key(name: str) -> str:
    """Key of the tail: the manifests after the last full segment, rewritten by listings as versions arrive."""
    return f"{index_prefix(name)}tail.json"


def parse_tail(name: str, first: int, raw: bytes) -> list[tuple[str, ModelVersion]]:
    """The usable entries of a tail that should start at ``first`` (none when it does not hold up)."""
    return _entries(name, first, raw, SEGMENT - 1) or []


def _get(store: ObjectStore, key: str) -> bytes | None:
    try:
        return store.get(key).data
    except ObjectNotFound:
        return None


def _held(store: ObjectStore, key: str, first: int) -> tuple[str, Any] | None:
    held = _parsed.of(store)
    with _parsed.lock:
        return held.get((key, first))


def _hold(store: ObjectStore, key: str, first: int, etag: str | None, manifests: Any) -> None:
    if etag is None:
        return
    held = _parsed.of(store)
    with _parsed.lock:
        held[(key, first)] = (etag, manifests)
        held.move_to_end((key, first))
        while len(held) > KEEP_PARSED:
            held.popitem(last=False)


def _read_parsed(store: ObjectStore, key: str, first: int, parse: Callable[[bytes], T | None]) -> T | None:
    """The manifests in index object ``key`` (None when missing or it does not hold up), parsed once per ETag."""
    held = _held(store, key, first)
    if held is not None and store.etag(key) == held[0]:
        return held[1]
    try:
        obj = store.get(key)
    except ObjectNotFound:
        return None
    found = parse(obj.data)
    if found is not None:
        _hold(store, key, first, obj.etag, found)
    return found


def read_all(store: ObjectStore, name: str, latest: int) -> list[ModelVersion]:
    """Every manifest of versions 1..``latest`` in version order.

    Full blocks come from their segments and the rest from the tail where they hold up; anything else is read
    manifest by manifest, and the index is filled for the next listing (best effort).
    """
    return read_range(store, name, 1, latest)


def read_range(store: ObjectStore, name: str, low: int, latest: int) -> list[ModelVersion]:
    """The manifests of versions ``low``..``latest`` in version order, read as ``read_all`` reads them.

    Only the segments holding a version of the range are read (and the tail), so the newest few hundred versions
    of a long model cost two or three index objects, not one manifest each.
    """
    every_start = segment_starts(latest)
    indexed_to = every_start[-1] + SEGMENT - 1 if every_start else 0
    starts = [first for first in every_start if first + SEGMENT > low]
    tail = parallel.submit(_read_parsed, store, tail_key(name), indexed_to + 1, _tail_parser(name, indexed_to + 1))
    blocks = [parallel.submit(_segment, store, name, first) for first in starts]
    known = [(t, mv) for t, mv in tail.result() or [] if mv.version <= latest]
    rest = [parallel.submit(_raw_manifest, store, name, v) for v in range(indexed_to + 1 + len(known), latest + 1)]
    fresh = [
        (raw, versions.parse_manifest(name, v, raw))
        for v, raw in enumerate((f.result() for f in rest), indexed_to + 1 + len(known))
    ]
    if len(fresh) >= TAIL_REFRESH:
        entries = [t.encode("utf-8") for t, _ in known] + [raw for raw, _ in fresh]
        _put_quietly(store, tail_key(name), build_segment(name, indexed_to + 1, entries), create_only=False)
    out = [mv for block in blocks for mv in block.result()]
    return [mv for mv in out + [mv for _, mv in known] + [mv for _, mv in fresh] if mv.version >= low]


def _tail_parser(name: str, first: int) -> Callable[[bytes], list[tuple[str, ModelVersion]] | None]:
    return lambda raw: parse_tail(name, first, raw) or None


def _segment(store: ObjectStore, name: str, first: int) -> list[ModelVersion]:
    def parse(raw: bytes) -> list[ModelVersion] | None:
        parsed = parse_segment(name, first, raw)
        return None if parsed is None else [mv for _, mv in parsed]

    found_in_index = _read_parsed(store, segment_key(name, first), first, parse)
    if found_in_index is not None:
        return found_in_index
    # Read the block's manifests here, one by one (a pool task never waits on another), and write its segment.
    raws = [_raw_manifest(store, name, v) for v in range(first, first + SEGMENT)]
    found = [versions.parse_manifest(name, v, raw) for v, raw in enumerate(raws, first)]
    _put_quietly(store, segment_key(name, first), build_segment(name, first, raws), create_only=True)
    return found


def _raw_manifest(store: ObjectStore, name: str, version: int) -> bytes:
    try:
        return store.get(keys.manifest_key(name, version)).data
    except ObjectNotFound:
        raise VersionNotFound(f"{name} has no version {version}") from None


def _put_quietly(store: ObjectStore, key: str, data: bytes, *, create_only: bool) -> None:
    try:
        store.put(key, data, create_only=create_only)
    except (PreconditionFailed, StoreError, OSError):
        pass  # another reader wrote it, or the store refused: the listing is right either way


#: What :func:`check` finds: ``(key, problem, kind)``, kind ``index_altered`` or ``index_unusable``.
Problem = tuple[str, str, str]


def check(store: ObjectStore, name: str, registered: dict[int, str], sha: Callable[[bytes], str]) -> list[Problem]:
    """Problems of a model's index objects, one per unusable or altered object (``verify`` reports them)."""
    problems = []
    prefix = index_prefix(name)
    for key in store.list(prefix):
        if key == tail_key(name):
            problems.extend(_check_tail(store, name, key, registered, sha))
            continue
        first = keys.parse_number(key, prefix)
        if first is None or (first - 1) % SEGMENT:
            problems.append((key, "stray object among the index segments", "index_unusable"))
            continue
        parsed = parse_segment(name, first, store.get(key).data)
        if parsed is None:
            problems.append((key, "index segment is unusable (listings read the manifests instead)", "index_unusable"))
            continue
        problems.extend(_altered(key, parsed, registered, sha))
    return problems


def _altered(
    key: str, entries: list[tuple[str, ModelVersion]], registered: dict[int, str], sha: Callable[[bytes], str]
) -> list[Problem]:
    """The first entry whose bytes differ from the manifest its ``registered`` event hashed, as a problem."""
    for text, mv in entries:
        if registered.get(mv.version) != sha(text.encode("utf-8")):
            return [(key, f"index entry of v{mv.version} differs from the registered manifest", "index_altered")]
    return []


def _check_tail(
    store: ObjectStore, name: str, key: str, registered: dict[int, str], sha: Callable[[bytes], str]
) -> list[Problem]:
    # A tail left behind by a block boundary is only outdated (listings ignore and rewrite it); an entry that
    # differs from its registered manifest is an alteration.
    body = _get(store, key) or b""
    try:
        first = json.loads(body).get("first")
    except (ValueError, AttributeError):
        first = None
    entries = parse_tail(name, first, body) if isinstance(first, int) else []
    if not entries:
        return [(key, "index tail is unusable (listings read the manifests instead)", "index_unusable")]
    return _altered(key, entries, registered, sha)
