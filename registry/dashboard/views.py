"""What each page shows, read from the registry's public API: plain data for the templates (no HTML here)."""

from __future__ import annotations

import csv
import io
import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prefect_model_registry.registry.core import keys, parallel
from prefect_model_registry.registry.core.replay import apply_event, held
from prefect_model_registry.registry.errors import IntegrityError, InvalidMetadata, ObjectNotFound
from prefect_model_registry.registry.events import EventType, describe_change
from prefect_model_registry.registry.models import Event, ModelState, ModelVersion, sha256
from prefect_model_registry.registry.registry import Registry

#: Audit-log rows per page (the model page's and the audit page's).
PAGE_SIZE = 25
#: Rows per page of the model page's versions table (newest first, or the matches of --where/--sort).
VERSION_ROWS = 25
#: Versions the model page's chart shows by default: the newest (every version with ?rows=all or a filter).
CHART_VERSIONS = 100
#: Periods of the model page's timeline shown by default: the newest (every period with ?periods=all).
TIMELINE_ROWS = 20
#: Versions the overview's trend of the primary metric covers (the newest ones).
TREND_VERSIONS = 20
#: Metrics the model page's chart shows when none are picked.
DEFAULT_CHART_METRICS = 3
#: Models the overview reads at once.
OVERVIEW_WORKERS = 16
#: Events that change no stage or alias: skipped while the timeline is replayed (keeps the replayed state small).
_NO_STAGE_CHANGE = {EventType.REGISTERED, EventType.SCORED, EventType.DESCRIBED, EventType.TAGGED}


def finite(value: Any) -> float | None:
    """A metric as a number for a chart: ``None`` for a missing, infinite or NaN value."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class Period:
    """One stretch of time a version held a stage or an alias (``end`` ``None``: it still does)."""

    kind: str  # "stage" or "alias"
    label: str  # the stage or alias name
    version: int
    start: datetime
    end: datetime | None = None
    started_by: str = ""


@dataclass
class Timeline:
    """Which version held each stage and alias when, replayed from the audit log."""

    periods: list[Period] = field(default_factory=list)

    def production_versions(self) -> set[int]:
        """Every version that was ever in production."""
        return {p.version for p in self.periods if p.kind == "stage" and p.label == "production"}


def timeline(events: Iterable[Event]) -> Timeline:
    """Stage and alias periods from ``events`` (oldest first), replayed with the registry's own rules."""
    state = ModelState(name="")
    found = Timeline()
    open_: dict[tuple[str, str, int], Period] = {}
    for event in events:
        if event.type in _NO_STAGE_CHANGE and not event.data.get("removed_aliases"):
            continue
        state = apply_event(state, event, "")
        now = held(state)
        for key, period in list(open_.items()):
            if key not in now:
                period.end = event.at
                del open_[key]
        for key in sorted(now - set(open_)):
            period = Period(key[0], key[1], key[2], event.at, started_by=event.actor)
            open_[key] = period
            found.periods.append(period)
    found.periods.sort(key=lambda p: (p.kind != "stage", p.label, p.start))
    return found


def state_timeline(state: ModelState) -> Timeline | None:
    """The periods from the timeline the state keeps (see ``ModelState.timeline``); None when it does not add up.

    It adds up when its entries are in log order, within the state, each ends only what was held, and what is
    held at its end is exactly what the state's stages and aliases say. The caller has checked that the state
    follows the log's newest event; ``pmr verify`` compares the whole timeline with a full replay.
    """
    found = Timeline()
    open_: dict[tuple[str, str, int], Period] = {}
    last = 0
    try:
        for entry in state.timeline:
            seq, at, actor = entry["seq"], datetime.fromisoformat(entry["at"]), str(entry["actor"])
            if not isinstance(seq, int) or not last < seq <= state.seq:
                return None
            last = seq
            for kind, label, version in entry["end"]:
                period = open_.pop((kind, label, version), None)
                if period is None:
                    return None
                period.end = at
            for kind, label, version in entry["start"]:
                if (kind, label, version) in open_ or kind not in ("stage", "alias"):
                    return None
                period = Period(kind, str(label), int(version), at, started_by=actor)
                open_[(kind, label, version)] = period
                found.periods.append(period)
    except (KeyError, TypeError, ValueError):
        return None
    if set(open_) != held(state):
        return None
    found.periods.sort(key=lambda p: (p.kind != "stage", p.label, p.start))
    return found


def _head_checked(reg: Registry, name: str, state: ModelState) -> bool:
    try:
        newest_event(reg, name, state)
    except IntegrityError:
        return False
    return True


def _read_raw(reg: Registry, name: str, seq: int) -> bytes | None:
    try:
        return reg.store.get(keys.event_key(name, seq)).data
    except ObjectNotFound:
        return None


def newest_page(reg: Registry, name: str, state: ModelState, page: int) -> tuple[list[Event], int, int] | None:
    """One page of the model's events, newest first, read alone (``PAGE_SIZE`` objects, in parallel).

    The page's events are chained to each other and to the event after the page (the newest to the head hash
    the state holds). None when they are not (the caller reads the whole log, which says what is wrong).
    """
    pages = max(1, math.ceil(state.seq / PAGE_SIZE))
    page = min(max(page, 1), pages)
    if state.seq == 0:
        return [], page, pages
    high = state.seq - (page - 1) * PAGE_SIZE
    low = max(1, high - PAGE_SIZE + 1)
    futures = [parallel.submit(_read_raw, reg, name, seq) for seq in range(low, min(high + 1, state.seq) + 1)]
    raws = [raw for raw in (f.result() for f in futures) if raw]
    if len(raws) != len(futures):  # missing or empty: the whole log says what is wrong
        return None
    after = state.head_hash
    if high < state.seq:  # the event after the page: only its link back is used
        try:
            after = Event.model_validate_json(raws.pop()).prev_hash
        except ValueError:
            return None
    events: list[Event] = []
    prev = None
    for seq, raw in zip(range(low, high + 1), raws, strict=True):
        try:
            event = Event.model_validate_json(raw)
        except ValueError:
            return None
        if event.seq != seq or event.model != name or (prev is not None and event.prev_hash != prev):
            return None
        prev = sha256(raw)
        events.append(event)
    if prev != after:
        return None
    return events[::-1], page, pages


def model_log(
    reg: Registry, name: str, state: ModelState, page: int, *, event_type: str | None, actor: str | None
) -> tuple[Timeline, list[Event], int, int, list[str]]:
    """The model page's timeline and audit-log page: (timeline, events, page, pages, event types to filter by).

    The timeline comes from the one the state keeps when the state follows the log's newest event and the
    timeline adds up; the audit page, unfiltered, is read alone. Otherwise (a filter, a state that does not
    match the log) the whole log is read and replayed.
    """
    trusted = _head_checked(reg, name, state)
    line = state_timeline(state) if trusted else None
    shown = newest_page(reg, name, state, page) if trusted and not event_type and not actor else None
    if line is not None and shown is not None:
        return line, *shown, [str(t) for t in EventType]
    history = reg.history(name)
    if line is None:
        line = timeline(history)
    events, number, pages = audit_page(history, page, event_type=event_type, actor=actor)
    return line, events, number, pages, sorted({e.type for e in history})


def newest_event(reg: Registry, name: str, state: ModelState) -> Event | None:
    """The model's newest event, read alone and checked against the head hash the model's state holds.

    Raises:
        IntegrityError: the event is missing or is not the one the state follows (altered since).

    """
    if state.seq == 0:
        return None
    try:
        raw = reg.store.get(keys.event_key(name, state.seq)).data
    except ObjectNotFound:
        raw = b""
    if not raw or sha256(raw) != state.head_hash:
        raise IntegrityError(
            f"event {state.seq} of {name} is missing or not the one its state follows (altered?): run `pmr verify`"
        )
    return Event.model_validate_json(raw)


def last_event(event: Event | None) -> dict[str, Any] | None:
    """Who changed what when, for one event."""
    if event is None:
        return None
    return {"actor": event.actor, "at": event.at, "change": describe_change(event), "reason": event.reason}


class OverviewMemo:
    """The parts of each model's overview row that follow from its log's head and its newest version alone.

    The last change is the event the log's head hash names and the trend is made of manifests up to the newest
    version: events and manifests are written once and never change, so while a model's state follows the same
    head event (sequence and hash) and its newest version is the same, those parts are the same. Each page load
    still reads every model's state and newest version (the log and the manifests decide); only what they name
    is kept. At most ``size`` models are kept, the least recently shown dropped first.
    """

    def __init__(self, size: int = 4096) -> None:
        """Keep the rows of at most ``size`` models."""
        self._size = size
        self._held: OrderedDict[str, tuple[tuple[int, str, int], dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, key: tuple[int, str, int]) -> dict[str, Any] | None:
        """What was kept for ``name`` under ``key`` (None when nothing was, or under another key)."""
        with self._lock:
            held = self._held.get(name)
            if held is None or held[0] != key:
                return None
            self._held.move_to_end(name)
            return held[1]

    def put(self, name: str, key: tuple[int, str, int], parts: dict[str, Any]) -> None:
        """Keep ``parts`` for ``name`` under ``key``."""
        with self._lock:
            self._held[name] = (key, parts)
            self._held.move_to_end(name)
            while len(self._held) > self._size:
                self._held.popitem(last=False)


def overview(reg: Registry, memo: OverviewMemo | None = None) -> list[dict[str, Any]]:
    """One row per model: production, staging, aliases, latest, waiting and blocked versions, last change, trend.

    Args:
        reg: the registry.
        memo: keeps what each model's head event and newest version name between loads (see ``OverviewMemo``).

    """
    rows: list[dict[str, Any]] = []

    def named_by_head(name: str, state: ModelState, latest: int) -> dict[str, Any]:
        newest = [mv for mv in reg.versions(name, limit=TREND_VERSIONS)[::-1] if mv.version <= latest]
        primary = next(iter(newest[-1].metrics), None) if newest else None
        trend = [(mv.version, finite(mv.metrics.get(primary))) for mv in newest] if primary else []
        return {
            "last": last_event(newest_event(reg, name, state)),
            "primary": primary,
            "trend": trend,
            "spark": sparkline([value for _, value in trend]),
        }

    def row(name: str) -> dict[str, Any]:
        state = reg.state(name)
        latest = reg.latest_version(name)
        key = (state.seq, state.head_hash, latest)
        parts = memo.get(name, key) if memo is not None else None
        if parts is None:
            parts = named_by_head(name, state, latest)
            if memo is not None:
                memo.put(name, key, parts)
        # With no paused runs to add, only a staged version can be waiting: most models need no second look.
        waiting = [entry.version for entry in reg.waiting(name)] if state.version_in("staging") else []
        return {
            "name": name,
            "latest": latest,
            "production": state.production,
            "staging": state.version_in("staging"),
            "aliases": dict(sorted(state.aliases.items())),
            "blocked": {v: reasons for v, reasons in sorted(state.blocked.items()) if v not in state.deleted},
            "waiting": waiting,
            **parts,
        }

    # Each model's reads wait on the store, not the CPU: models in parallel (rows stay in the models' order).
    with ThreadPoolExecutor(max_workers=OVERVIEW_WORKERS) as pool:
        rows.extend(pool.map(row, reg.models()))
    return rows


def sparkline(values: Sequence[float | None], width: int = 120, height: int = 24) -> str:
    """SVG polyline points (numbers only) for a small trend; empty when fewer than two values."""
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(known) < 2:
        return ""
    low, high = min(v for _, v in known), max(v for _, v in known)
    span = (high - low) or 1.0
    step = width / max(len(values) - 1, 1)
    return " ".join(f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}" for i, v in known)


def metric_names(versions: Iterable[ModelVersion]) -> list[str]:
    """Every metric name any of ``versions`` has, sorted."""
    return sorted({m for mv in versions for m in mv.metrics})


def default_metrics(versions: Iterable[ModelVersion], count: int = DEFAULT_CHART_METRICS) -> list[str]:
    """The metrics a chart shows when none are picked: those most versions have (then by name)."""
    seen: dict[str, int] = {}
    for mv in versions:
        for m in mv.metrics:
            seen[m] = seen.get(m, 0) + 1
    return sorted(seen, key=lambda m: (-seen[m], m))[:count]


def chart_data(versions: Sequence[ModelVersion], metrics: Sequence[str], line: Timeline) -> dict[str, Any]:
    """The model page's chart: one point per version (oldest first) per chosen metric, production marked."""
    ordered = sorted(versions, key=lambda mv: mv.version)
    in_production = line.production_versions()
    periods = [
        {"version": p.version, "start": p.start.isoformat(), "end": p.end.isoformat() if p.end else None}
        for p in line.periods
        if p.kind == "stage" and p.label == "production"
    ]
    return {
        "versions": [mv.version for mv in ordered],
        "labels": [f"v{mv.version}" for mv in ordered],
        "production": [mv.version in in_production for mv in ordered],
        "periods": periods,
        "series": [{"metric": m, "values": [finite(mv.metrics.get(m)) for mv in ordered]} for m in metrics],
    }


def window(vpage: int) -> int:
    """How many of the newest versions the model page reads for page ``vpage`` of its table (and its chart)."""
    return max(CHART_VERSIONS, max(vpage, 1) * VERSION_ROWS)


def rows_page(rows: Sequence[Any], vpage: int, total: int) -> tuple[list[Any], int, int]:
    """Page ``vpage`` of the versions table, of ``total`` rows in all (``rows`` holds at least the pages before)."""
    pages = max(1, math.ceil(total / VERSION_ROWS))
    vpage = min(max(vpage, 1), pages)
    return list(rows[(vpage - 1) * VERSION_ROWS : vpage * VERSION_ROWS]), vpage, pages


def newest_periods(line: Timeline, count: int | None = None) -> list[Period]:
    """The ``count`` periods that started last (``TIMELINE_ROWS``), in the timeline's order (stages, then aliases)."""
    count = TIMELINE_ROWS if count is None else count
    if len(line.periods) <= count:
        return line.periods
    keep = {id(p) for p in sorted(line.periods, key=lambda p: p.start, reverse=True)[:count]}
    return [p for p in line.periods if id(p) in keep]


def aliases_by_version(state: ModelState) -> dict[int, list[str]]:
    """The aliases each version carries, sorted (the versions table shows them per row)."""
    found: dict[int, list[str]] = {}
    for alias, version in sorted(state.aliases.items()):
        found.setdefault(version, []).append(alias)
    return found


def paginate(rows: Sequence[Any], page: int) -> tuple[list[Any], int, int]:
    """One page of ``rows`` (``PAGE_SIZE`` a page; ``page`` clamped to the pages there are): (rows, page, pages)."""
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    page = min(max(page, 1), pages)
    return list(rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]), page, pages


def audit_page(
    events: Sequence[Event], page: int, *, event_type: str | None = None, actor: str | None = None
) -> tuple[list[Event], int, int]:
    """Events newest first, filtered, one page of them: (rows, page, pages)."""
    chosen = [
        e for e in reversed(events) if (not event_type or e.type == event_type) and (not actor or e.actor == actor)
    ]
    return paginate(chosen, page)


def parse_time(text: str | None, what: str) -> datetime | None:
    """A ``since``/``until`` filter: an ISO date or time (UTC unless it names a zone); ``None`` when empty.

    Raises:
        InvalidMetadata: not an ISO date or time.

    """
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidMetadata(
            f"{what} must be an ISO date or time (2026-01-31 or 2026-01-31T12:00), got {text!r}"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def audit(
    reg: Registry,
    *,
    model: str | None = None,
    actor: str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Event]:
    """Every model's events (or one model's), filtered, newest first."""
    names = [model] if model else reg.models()
    found = [
        e
        for name in names
        for e in reg.history(name)
        if (not actor or e.actor == actor)
        and (not event_type or e.type == event_type)
        and (since is None or e.at >= since)
        and (until is None or e.at <= until)
    ]
    found.sort(key=lambda e: (e.at, e.model, e.seq), reverse=True)
    return found


#: Cells a spreadsheet would run as a formula start with one of these: such a cell is written with a leading '.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text (a leading ``'`` before a would-be formula)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def audit_csv(events: Iterable[Event]) -> str:
    """Events as CSV: model, seq, at, actor, type, version, change, reason."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["model", "seq", "at", "actor", "type", "version", "change", "reason"])
    for e in events:
        row = [e.model, e.seq, e.at.isoformat(), e.actor, e.type, e.version, describe_change(e), e.reason]
        writer.writerow([csv_cell(v) for v in row])
    return out.getvalue()


def diff(one: ModelVersion, other: ModelVersion) -> dict[str, list[dict[str, Any]]]:
    """What differs between two versions: metrics (with the change), params, tags, description, lineage."""

    def rows(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
        found = []
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                x, y = finite(a.get(key)), finite(b.get(key))
                delta = x - y if x is not None and y is not None else None
                found.append({"key": key, "this": a.get(key), "other": b.get(key), "delta": delta})
        return found

    lineage_a = one.lineage.model_dump(mode="json", exclude={"packages"})
    lineage_b = other.lineage.model_dump(mode="json", exclude={"packages"})
    return {
        "metrics": rows(dict(one.metrics), dict(other.metrics)),
        "params": rows(dict(one.params), dict(other.params)),
        "tags": rows(dict(one.tags), dict(other.tags)),
        "description": rows({"description": one.description}, {"description": other.description}),
        "lineage": rows(lineage_a, lineage_b),
        "packages": rows(dict(one.lineage.packages), dict(other.lineage.packages)),
    }
