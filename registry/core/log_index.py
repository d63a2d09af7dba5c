"""An index of the audit log: each full block of ``BLOCK`` events packed, byte for byte, into one object.

The log is one object per event, so reading a model's whole history (``pmr history``, the dashboard's audit and
version pages) costs one request per event: 10,000 events through S3 take seconds. Events never change once
written, so a full block can be packed into ``models/<name>/log-index/<first:010d>.json``, written create-only
by the first reader that read the block and never rewritten, like the listing index (:mod:`.index`).

It is only a cache, and it is trusted for nothing by itself. A block is used only when it parses, names this
model and block, and every entry parses as the event of its sequence number chained to the one before (the
first to the last event before the block). The blocks read that way are used only once an event read from the
log itself follows them and chains to the last of them: every entry is then pinned by the hash chain to a real
event, so a forged or altered block cannot be taken for the log (a block that fails any of this is ignored, and
its events are read one by one). ``verify`` compares every entry with the event it stands for
(``log_index_altered``); ``verify --repair --apply`` deletes a bad block, which the next full read writes again.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from prefect_model_registry.registry.core import keys
from prefect_model_registry.registry.core.drafts import parse_event
from prefect_model_registry.registry.errors import IntegrityError, ObjectNotFound, PreconditionFailed, StoreError
from prefect_model_registry.registry.models import Event, sha256
from prefect_model_registry.registry.store.base import ObjectStore

#: Events per block. 256 events of a few hundred bytes to a few KiB: one object of well under a MiB.
BLOCK = 256

#: What :func:`check` finds: ``(key, problem, kind)``, kind ``log_index_altered`` or ``log_index_unusable``.
Problem = tuple[str, str, str]


def prefix(name: str) -> str:
    """Key prefix of a model's log-index blocks."""
    return f"{keys.model_prefix(name)}log-index/"


def block_key(name: str, first: int) -> str:
    """Key of the block that starts at event ``first`` (1, 257, 513, ...)."""
    return f"{prefix(name)}{first:010d}.json"


def build(name: str, first: int, raws: list[bytes]) -> bytes:
    """The block object for events ``first``.. from their stored bytes (in sequence order)."""
    body = {"name": name, "first": first, "events": [raw.decode("utf-8") for raw in raws]}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entries(name: str, first: int, raw: bytes) -> list[bytes] | None:
    """The stored bytes of each event a block holds (None unless it names this model and block, full)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    texts = body.get("events") if isinstance(body, dict) else None
    if not isinstance(texts, list) or body.get("name") != name or body.get("first") != first:
        return None
    if len(texts) != BLOCK or not all(isinstance(t, str) for t in texts):
        return None
    return [t.encode("utf-8") for t in texts]


def read(store: ObjectStore, name: str, first: int, prev_hash: str) -> list[tuple[Event, str]] | None:
    """The events of the block at ``first``, each chained to the one before from ``prev_hash``; else None.

    The caller uses them only once an event read from the log chains to the last of them (see the module).
    """
    try:
        raw = store.get(block_key(name, first)).data
    except (ObjectNotFound, StoreError):
        return None
    found = entries(name, first, raw)
    if found is None:
        return None
    out = []
    for seq, text in enumerate(found, first):
        try:
            event = parse_event(name, seq, text, prev_hash)
        except IntegrityError:
            return None
        prev_hash = sha256(text)
        out.append((event, prev_hash))
    return out


def write(store: ObjectStore, name: str, first: int, raws: list[bytes]) -> None:
    """Pack a full block of events just read from the log (best effort: create-only, errors ignored)."""
    if len(raws) != BLOCK or (first - 1) % BLOCK:
        return
    try:
        store.put(block_key(name, first), build(name, first, raws), create_only=True)
    except (PreconditionFailed, StoreError, OSError):
        pass  # another reader wrote it, or the store refused: the history is right either way


def check(store: ObjectStore, name: str, digests: dict[int, str], sha: Callable[[bytes], str]) -> list[Problem]:
    """Problems of a model's log-index blocks (``digests``: the SHA-256 of each event ``verify`` read)."""
    problems: list[Problem] = []
    base = prefix(name)
    for key in store.list(base):
        first = keys.parse_number(key, base)
        if first is None or first < 1 or (first - 1) % BLOCK:
            problems.append((key, "stray object among the log-index blocks", "log_index_unusable"))
            continue
        found = entries(name, first, store.get(key).data)
        if found is None:
            problems.append(
                (key, "log-index block is unusable (readers read the events instead)", "log_index_unusable")
            )
            continue
        for seq, text in enumerate(found, first):
            if digests.get(seq) != sha(text):
                problems.append((key, f"log-index entry of event {seq} differs from the event", "log_index_altered"))
                break
    return problems
