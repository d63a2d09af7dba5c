"""The append-only, hash-chained audit log of one model, and the state snapshot replayed from it.

The log is the single point where changes to stages and aliases are linearised: an event is appended with a
create-only write at ``seq = last + 1``, after checking the change against the state as of ``last``. Of
several racing writers exactly one wins that ``seq``; the others read the winner's event, re-check their
change against the new state and try ``seq + 1``. So a promotion is one atomic write, two production
versions can never coexist, and no change can happen without its event.

``state.json`` is a snapshot of the replayed state, refreshed after appends in the background
(``background``). It may lag; readers catch up by reading the events after it (usually none: one
missing-key read), so resolving ``@production`` costs a constant number of requests however many versions and
events a model has. Refreshing it is best effort: an append whose event landed has succeeded, whatever happens
to the snapshot write after it.

A process remembers the state it built from events it checked itself (``_Known``). Its next append goes straight
to the create-only write at ``seq + 1``: if that lands, nothing was appended since, so the state the change was
checked against was the current one; if it loses, the writer reads the new events and plans again, as after any
lost race. A state that came from the snapshot object alone (a cache) is first checked against the log's head.

An append may carry an operation key, stored in the event. Given the log position at which the key was
claimed (``since``), the append first looks for an event with that key after it and returns that event
instead of acting twice; every event it reads while catching up after a lost race is checked the same way.
To append at ``seq`` a writer must have read every event before it, so two attempts with one key can never
both land.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from pydantic import ValidationError

from prefect_model_registry.registry import hooks
from prefect_model_registry.registry.core import announcer, background, log_index, parallel
from prefect_model_registry.registry.core.drafts import Draft, check_event_size, current_snapshot, parse_event, replay
from prefect_model_registry.registry.core.keys import event_key, events_prefix, parse_number, state_key
from prefect_model_registry.registry.core.memory import ProcessMemory
from prefect_model_registry.registry.core.replay import apply_event
from prefect_model_registry.registry.errors import (
    ConcurrencyError,
    IntegrityError,
    ObjectNotFound,
    PreconditionFailed,
    StoreError,
)
from prefect_model_registry.registry.events import EventType
from prefect_model_registry.registry.models import GENESIS, Event, ModelState, sha256, utcnow
from prefect_model_registry.registry.store.base import ObjectStore

#: Give up on an append after this many seconds of lost races (SeaweedFS serialises hot keys at ~1 s steps).
APPEND_BUDGET_S = 180.0
#: A reader that had to replay this many events past the snapshot refreshes it.
SNAPSHOT_LAG = 8

#: Events read one by one in a catch-up before the snapshot object is looked at (see ``ModelLog._catch_up``).
JUMP_AFTER = 4
#: Event reads a long replay keeps in flight ahead of the parsing (see ``ModelLog._events_from``).
READ_AHEAD = 32


T = TypeVar("T")

__all__ = ["APPEND_BUDGET_S", "JUMP_AFTER", "SNAPSHOT_LAG", "ModelLog"]

#: Events whose size the registry decides, not the caller: a registration's (its manifest was checked, and
#: whoever catches the log up must be able to log it) and retention's list of deleted versions.
_SIZED_AT_SOURCE = frozenset({EventType.REGISTERED, EventType.DELETED})


@dataclass
class _Known:
    """What this process last knew of a model's log: a state built from checked events, and the snapshot object."""

    state: ModelState
    stored_seq: int  # the seq of the snapshot object, as last read or written here
    etag: str | None  # its ETag (None: no snapshot object)
    #: Built from events this process read and checked from a confirmed start, never only from the snapshot
    #: object's word: an append may build on it without checking the head first.
    confirmed: bool = False


# Per store object (one per Registry), per model. A process that keeps its Registry skips the snapshot read on
# every call after the first: it probes the log from what it already knows (events appended since by anyone
# are found by that probe, exactly as after reading the snapshot object).
_known: ProcessMemory[dict[str, _Known]] = ProcessMemory(dict)
_memo = _known.of


def _when(draft: Draft, state: ModelState) -> datetime:
    """The event's time: now, or the draft's own (earlier) time kept no earlier than the event before it."""
    now = utcnow()
    if draft.at is None or draft.at >= now:
        return now
    return max(draft.at, state.updated_at) if state.updated_at is not None else draft.at


class _Packer:
    """Collects the events of each full block read from the log and packs the block into the log index."""

    def __init__(self, log: ModelLog) -> None:
        self._log = log
        self._raws: list[bytes] = []
        self._first = 0

    def add(self, seq: int, raw: bytes) -> None:
        if (seq - 1) % log_index.BLOCK == 0:
            self._raws, self._first = [], seq
        if self._first and seq == self._first + len(self._raws):
            self._raws.append(raw)
            if len(self._raws) == log_index.BLOCK:
                log_index.write(self._log.store, self._log.name, self._first, self._raws)
                self._raws, self._first = [], 0


class ModelLog:
    """Reads, replays and appends to one model's log."""

    def __init__(self, store: ObjectStore, name: str) -> None:
        self.store = store
        self.name = name
        announcer.flush()  # this process's registrations are in the log before anything reads or appends to it

    def _start(self) -> tuple[ModelState, int, str | None, bool]:
        """Where to read the log from: what this process knows, else the snapshot object.

        Returns the state, the snapshot object's seq and ETag, and whether the state is confirmed (see ``_Known``).
        """
        seen = self._known_view()
        if seen is not None:  # a copy: callers may change the state they get, the memo must not change
            return seen[0].model_copy(deep=True), seen[1], seen[2], seen[3]
        snap, etag = self._snapshot()
        return snap, snap.seq, etag, False

    def _known_view(self) -> tuple[ModelState, int, str | None, bool] | None:
        """What this process knows (state, snapshot seq, ETag, confirmed), read at once: threads may update it."""
        memo = _memo(self.store)
        with _known.lock:
            known = memo.get(self.name)
            return None if known is None else (known.state, known.stored_seq, known.etag, known.confirmed)

    def _remember(self, state: ModelState, stored_seq: int, etag: str | None, confirmed: bool = False) -> None:
        memo = _memo(self.store)
        with _known.lock:
            known = memo.get(self.name)
            if known is None:
                memo[self.name] = _Known(state, stored_seq, etag, confirmed)
                return
            if state.seq > known.state.seq or (state.seq == known.state.seq and confirmed):
                known.state, known.confirmed = state, confirmed
            if stored_seq > known.stored_seq:  # the newest word on the snapshot object wins, whoever wrote it
                known.stored_seq, known.etag = stored_seq, etag

    def forget(self) -> None:
        """Drop what this process knew of the log (the next call reads the snapshot object again)."""
        _memo(self.store).pop(self.name, None)

    def _snapshot(self) -> tuple[ModelState, str | None]:
        try:
            obj = self.store.get(state_key(self.name))
        except ObjectNotFound:
            return ModelState(name=self.name), None
        try:
            snap = ModelState.model_validate_json(obj.data)
        except (ValidationError, ValueError):
            # A corrupt snapshot is only a cache: replay from the start (verify reports it).
            return ModelState(name=self.name), obj.etag
        if snap.name != self.name or snap.seq < 0 or not current_snapshot(obj.data):
            # Unusable, or written by a release that did not track deletions yet: replay (it gets rewritten).
            return ModelState(name=self.name), obj.etag
        return snap, obj.etag

    def _catch_up(
        self, state: ModelState, op_key: str | None = None, first: Future[bytes | None] | None = None
    ) -> tuple[ModelState, Event | None]:
        """Apply the events after ``state``; stop at the first one carrying ``op_key`` and return it too.

        ``first`` is the read of event ``state.seq + 1`` already under way (see :meth:`_probe`). Far behind (other
        writers appended :data:`JUMP_AFTER` events or more) and with no key to look for, it goes on from the
        snapshot object instead when that is further on and its last event hashes to its ``head_hash``, as
        :meth:`append` trusts it: two reads instead of one per event.
        """
        events = self._events_from(state.seq + 1, state.head_hash, first)
        jumped, read = op_key is not None, 0  # a key is looked for in every event: no skipping then
        while True:
            for event, digest in events:
                state = replay(state, event, digest)
                if op_key is not None and event.op_key == op_key:
                    return state, event
                read += 1
                if not jumped and read == JUMP_AFTER:
                    jumped = True
                    snap, etag = self._snapshot()
                    if snap.seq > state.seq and self._snapshot_matches_log(snap):
                        # Where the snapshot object stands now, so a later refresh of it writes on its ETag.
                        self._remember(snap, snap.seq, etag)
                        state, events = snap.model_copy(deep=True), self._events_from(snap.seq + 1, snap.head_hash)
                        break
            else:
                return state, None

    def _snapshot_matches_log(self, snap: ModelState) -> bool:
        """Whether the snapshot's last event exists and hashes to the snapshot's ``head_hash``."""
        if snap.seq == 0:
            return snap.head_hash == GENESIS
        try:
            return sha256(self.store.get(event_key(self.name, snap.seq)).data) == snap.head_hash
        except ObjectNotFound:
            return False

    def find(self, op_key: str, since: int) -> Event | None:
        """The event after ``since`` that carries ``op_key``, if one landed."""
        for event in self.events_after(since):
            if event.op_key == op_key:
                return event
        return None

    def _read_event(self, seq: int) -> bytes | None:
        try:
            return self.store.get(event_key(self.name, seq)).data
        except ObjectNotFound:
            return None

    def _probe(self, seq: int) -> Future[bytes | None]:
        """Start reading event ``seq`` (usually missing: the probe that says the log ends before it)."""
        return parallel.submit(self._read_event, seq)

    def _events_from(
        self,
        seq: int,
        prev_hash: str,
        first: Future[bytes | None] | None = None,
        packer: _Packer | None = None,
        expect: int | None = None,
    ) -> Iterator[tuple[Event, str]]:
        """Events from ``seq`` on, each parsed and chained to the one before, until the first missing one.

        The reads run ahead of the parsing: after ``n`` events, ``min(n, READ_AHEAD)`` reads are in flight, so a
        long log is read in parallel while a catch-up of one event (the usual case) costs no extra read. When
        the caller ``expect``s the log to end at that event (what the process last knew), reads run ahead only up
        to it, then go one by one: the end of the log costs one read past it, not ``READ_AHEAD``.
        """
        ahead: deque[Future[bytes | None]] = deque([first if first is not None else self._probe(seq)])
        submitted = seq + 1
        count = 0
        while True:
            raw = ahead.popleft().result()
            if raw is None:
                return
            event = parse_event(self.name, seq, raw, prev_hash)
            prev_hash = sha256(raw)
            if packer is not None:
                packer.add(seq, raw)
            yield event, prev_hash
            seq += 1
            count += 1
            while not ahead or (len(ahead) < min(count, READ_AHEAD) and (expect is None or submitted <= expect)):
                ahead.append(self._probe(submitted))
                submitted += 1

    def state(self) -> ModelState:
        """The current state: the snapshot (or what this process knew) plus any events written after it."""
        start, stored_seq, etag, confirmed = self._start()
        state, _ = self._catch_up(start)
        self._settle(state, stored_seq, etag, confirmed)
        return state

    def _settle(self, state: ModelState, stored_seq: int, etag: str | None, confirmed: bool) -> None:
        """Remember ``state``; refresh the snapshot object when readers elsewhere would replay too much."""
        self._remember(state, stored_seq, etag, confirmed)
        if state.seq - stored_seq >= SNAPSHOT_LAG:
            self._refresh_later()

    def state_then(self, follow: Callable[[ModelState], T]) -> tuple[ModelState, Future[T] | None]:
        """The current state, with ``follow(snapshot)`` run alongside the probe for events after the snapshot.

        Returns the state and, when no event followed the snapshot (the usual case), the future of ``follow``
        on it: a read that depends on the state (a manifest an alias names) costs no extra round trip. When
        events followed, the future is None and the caller runs ``follow`` on the returned state itself.
        """
        start, stored_seq, etag, confirmed = self._start()
        probe = self._probe(start.seq + 1)
        ahead = parallel.submit(follow, start)
        state, _ = self._catch_up(start, first=probe)
        self._settle(state, stored_seq, etag, confirmed)
        return state, (ahead if state.seq == start.seq else None)

    def refresh_snapshot(self) -> ModelState:
        """The current state, saving the snapshot if it lags at all (after a retry found its event landed)."""
        background.flush()  # a refresh already queued here must not overwrite this one afterwards
        self.forget()  # this is about the snapshot object itself: read it
        snapshot, etag = self._snapshot()
        state, _ = self._catch_up(snapshot)
        self._save_snapshot(state, snapshot.seq, etag)
        return state

    def events(self) -> Iterator[Event]:
        """Every event from the first, checking the hash chain and that nothing follows a missing event.

        Raises:
            IntegrityError: the chain is broken, or an event is missing before later ones (a gap).

        """
        last = 0
        for event, _ in self._from_genesis():
            last = event.seq
            yield event
        self.check_no_gap(last)

    def _from_genesis(self) -> Iterator[tuple[Event, str]]:
        """Every event with its digest, full blocks from the log index where they hold up (see ``log_index``).

        Blocks are taken only when the first event read from the log after them chains to the last of them;
        otherwise one block fewer is tried, down to none (the log alone, which says what is wrong if anything).
        """
        known = self._known_view()
        expect = known[0].seq if known is not None else None
        blocks: list[list[tuple[Event, str]]] = []
        seq, prev = 1, GENESIS
        while expect is None or expect > seq + log_index.BLOCK - 1:  # a log shorter than a block has none
            block = log_index.read(self.store, self.name, seq, prev)
            if block is None:
                break
            blocks.append(block)
            seq, prev = seq + log_index.BLOCK, block[-1][1]
        for used in range(len(blocks), -1, -1):
            start = 1 + used * log_index.BLOCK
            prev = blocks[used - 1][-1][1] if used else GENESIS
            rest = self._events_from(start, prev, packer=_Packer(self), expect=expect)
            try:
                after = next(rest, None)
            except IntegrityError:
                if not used:
                    raise
                continue  # the log does not follow these blocks: read it without them
            if after is None and used:
                continue  # nothing after the blocks confirms the last of them
            for block in blocks[:used]:
                yield from block
            if after is not None:
                yield after
                yield from rest
            return

    def check_no_gap(self, last: int) -> None:
        """Raise :class:`IntegrityError` if any event key lies beyond ``last``, the end of the readable log."""
        prefix = events_prefix(self.name)
        for key in self.store.list(prefix):
            seq = parse_number(key, prefix)
            if seq is not None and seq > last:
                raise IntegrityError(f"the log of {self.name} has a gap: event {last + 1} is missing before {seq}")

    def events_after(self, seq: int) -> Iterator[Event]:
        """Events after ``seq``, oldest first (chained from event ``seq``, which is read for its hash)."""
        prev = GENESIS
        if seq > 0:
            try:
                prev = sha256(self.store.get(event_key(self.name, seq)).data)
            except ObjectNotFound:
                return
        for event, _ in self._events_from(seq + 1, prev):
            yield event

    def state_at(self, when: datetime) -> ModelState:
        """The state as it was at ``when``, replayed from the log."""
        state = ModelState(name=self.name)
        for event, digest in self._from_genesis():
            if event.at > when:
                break
            state = replay(state, event, digest)
        return state

    def append(
        self,
        plan: Callable[[ModelState], Draft | None],
        *,
        op_key: str | None = None,
        since: int | None = None,
    ) -> tuple[Event | None, ModelState]:
        """Append the event that ``plan`` builds from the current state.

        ``plan`` is called again with the newer state each time another writer wins the race, so its checks
        always hold for the state the event is appended to. It may return ``None`` for "nothing to do".

        Args:
            plan: builds the event from the state it will follow, or raises a typed refusal.
            op_key: stored in the event; an event with this key found after ``since`` is returned instead.
            since: the log position when ``op_key`` was claimed (every attempt with the key lands after it).

        Returns:
            The event written or found (or ``None``) and the state after the log's current end.

        Raises:
            ConcurrencyError: lost races for longer than :data:`APPEND_BUDGET_S`.
            Whatever ``plan`` raises (typed refusals), with nothing written.

        """
        state, stored_seq, etag, confirmed, landed = self._start_append(op_key, since)
        if landed is not None:
            return landed
        deadline = time.monotonic() + APPEND_BUDGET_S
        attempt = 0
        fresh = not confirmed  # whether ``state`` was read up to the log's end just now
        while True:
            try:
                draft = plan(state)
            except Exception:
                if fresh:
                    raise
                draft = None  # a refusal on what this process remembered: look at the log's end first
            if draft is None and not fresh:
                # "Nothing to do" or a refusal counts only against the current state: a write proves that by
                # landing, a refusal by reading what was appended since (usually nothing: one probe).
                state, found = self._catch_up(state, op_key)
                fresh = True
                if found is not None:
                    return found, self._catch_up(state)[0]
                continue
            if draft is None:
                self._remember(state, stored_seq, etag, True)
                return None, state
            event = self._place(draft, state, op_key)
            raw = event.to_bytes()
            try:
                self.store.put(event_key(self.name, event.seq), raw, create_only=True)
            except PreconditionFailed:
                attempt += 1
                self._back_off(attempt, deadline)
                state, found = self._catch_up(state, op_key)
                fresh = True
                if found is not None:  # another attempt with our key won: its outcome is ours
                    return found, self._catch_up(state)[0]
                continue
            state = apply_event(state, event, sha256(raw))
            self._remember(state, stored_seq, etag, True)
            self._refresh_later()
            hooks.notify(event, self.store)
            return event, state

    def _start_append(
        self, op_key: str | None, since: int | None
    ) -> tuple[ModelState, int, str | None, bool, tuple[Event, ModelState] | None]:
        """Where an append starts, and the outcome if an earlier attempt with ``op_key`` already landed.

        The state (confirmed against the log unless this process built it), the snapshot object's seq and ETag,
        and whether the state is confirmed.
        """
        snapshot, stored_seq, etag, confirmed = self._start()
        probe: Future[bytes | None] | None = None
        if not confirmed:
            probe = self._probe(snapshot.seq + 1)  # overlaps the check below: both depend only on the snapshot
            if not self._snapshot_matches_log(snapshot):
                self.forget()
                snapshot, probe = ModelState(name=self.name), None  # never build a write on an unconfirmed cache
                stored_seq = -1  # and replace that snapshot object once the log is replayed
        if op_key is not None and since is not None and since < snapshot.seq:
            # The start is past the claim point: look for our event among the events it covers.
            earlier = self.find(op_key, since)
            if earlier is not None:
                return snapshot, stored_seq, etag, confirmed, (earlier, self._catch_up(snapshot, first=probe)[0])
        if confirmed:  # straight to the write: a lost race reads what was appended since, as in append
            return snapshot, stored_seq, etag, confirmed, None
        state, found = self._catch_up(snapshot, op_key, probe)
        if found is not None:  # an earlier attempt landed: finish its best-effort snapshot refresh too
            state = self._catch_up(state)[0]
            self._remember(state, stored_seq, etag, True)
            self._save_snapshot(state, stored_seq, etag)
            return state, stored_seq, etag, confirmed, (found, state)
        return state, stored_seq, etag, confirmed, None

    def _place(self, draft: Draft, state: ModelState, op_key: str | None) -> Event:
        """The event ``draft`` becomes right after ``state`` (its size checked unless the registry sized it)."""
        if draft.type not in _SIZED_AT_SOURCE:
            check_event_size(self.name, draft, op_key)
        return Event(
            seq=state.seq + 1,
            type=draft.type,
            model=self.name,
            version=draft.version,
            actor=draft.actor,
            at=_when(draft, state),
            reason=draft.reason,
            run_id=draft.run_id,
            data=draft.data or {},
            prev_hash=state.head_hash,
            op_key=draft.op_key if draft.op_key is not None else op_key,
        )

    def _back_off(self, attempt: int, deadline: float) -> None:
        """After a lost race: give up past the deadline, else sleep a jittered while (no lockstep collisions)."""
        if time.monotonic() > deadline:
            raise ConcurrencyError(f"gave up appending to the log of {self.name} after {attempt} races") from None
        time.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))

    def _refresh_later(self) -> None:
        """Queue a refresh of the snapshot object to what this process knows (a burst of appends: one write)."""
        background.submit(self._refresh_known, key=("state", id(self.store), self.name))

    def _refresh_known(self) -> None:
        seen = self._known_view()
        if seen is not None and seen[0].seq > seen[1]:
            self._save_snapshot(seen[0], seen[1], seen[2])

    def _save_snapshot(self, state: ModelState, stored_seq: int, etag: str | None) -> None:
        # Best effort, one try: a lost race means someone else refreshed it, and readers catch up anyway. Any
        # store error is swallowed too: the event already landed, so the operation has happened.
        if state.seq <= stored_seq:
            return
        try:
            if etag is None:
                etag = self.store.put(state_key(self.name), state.model_dump_json().encode(), create_only=True)
            else:
                etag = self.store.put(state_key(self.name), state.model_dump_json().encode(), if_match=etag)
        except (StoreError, OSError):
            self._relearn_snapshot_object()  # someone else refreshed it (or the store failed)
            return
        self._remember(state, state.seq, etag)

    def _relearn_snapshot_object(self) -> None:
        """After a lost refresh: learn the snapshot object's seq and ETag again, keeping the state known here."""
        memo = _memo(self.store)
        try:
            snap, etag = self._snapshot()  # an unusable or missing object reads as seq 0: the next refresh rewrites it
        except (StoreError, OSError):
            memo.pop(self.name, None)
            return
        with _known.lock:
            known = memo.get(self.name)
            if known is not None:
                known.stored_seq, known.etag = snap.seq, etag
