"""``verify``: walk a model (or the whole registry) and report what does not add up.

Finds dangling pointers (stages, aliases, hints or idempotency records naming missing versions), missing or
altered blobs, manifests that differ from what their registration event recorded, broken or gapped event
chains, and a state snapshot that disagrees with the replayed log.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import ValidationError

from registry.errors import IntegrityError, ObjectNotFound
from registry.lifecycle import apply_event
from registry.log import events_prefix, parse_event, state_key
from registry.models import GENESIS, ModelState, ModelVersion, sha256
from registry.names import check_model_name
from registry.registry import Registry


@dataclass(frozen=True)
class Finding:
    """One problem: where it is and what is wrong."""

    model: str
    key: str
    problem: str
    severity: str = "error"  # "error" or "warning"


@dataclass
class VerifyReport:
    """What ``verify`` checked and found."""

    models: int = 0
    versions: int = 0
    events: int = 0
    blobs: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not any(f.severity == "error" for f in self.findings)


def verify(registry: Registry, name: str | None = None) -> VerifyReport:
    """Check one model, or every model when ``name`` is None."""
    report = VerifyReport()
    names = [check_model_name(name)] if name is not None else registry.store.list_children("models/")
    if name is not None:
        registry.state(name)  # raises ModelNotFound for an unknown name
    for model in names:
        _verify_model(registry, model, report)
    return report


def _verify_model(reg: Registry, name: str, report: VerifyReport) -> None:
    store = reg.store
    report.models += 1

    def bad(key: str, problem: str, severity: str = "error") -> None:
        report.findings.append(Finding(name, key, problem, severity))

    # The log: contiguous, chained, parsable; remember what each registration recorded.
    registered: dict[int, str] = {}
    state = ModelState(name=name)
    states_by_seq: dict[int, ModelState] = {0: state}
    prefix = events_prefix(name)
    keys = list(store.list(prefix))
    prev = GENESIS
    for expected, key in enumerate(keys, start=1):
        try:
            seq = int(key[len(prefix) : -len(".json")])
        except ValueError:
            bad(key, "stray object among the events")
            break
        if seq != expected:
            bad(key, f"event {expected} is missing (gap before event {seq})")
            break
        raw = store.get(key).data
        try:
            event = parse_event(name, seq, raw, prev)
        except IntegrityError as exc:
            bad(key, str(exc))
            break
        prev = sha256(raw)
        state = apply_event(state, event, prev)
        states_by_seq[seq] = state
        report.events += 1
        if event.type == "registered" and event.version is not None:
            registered[event.version] = event.data.get("manifest_sha256", "")

    # The snapshot must equal the log replayed to the same point.
    try:
        snap = ModelState.model_validate_json(store.get(state_key(name)).data)
        replayed = states_by_seq.get(snap.seq)
        if replayed is None:
            bad(state_key(name), f"snapshot claims event {snap.seq}, beyond the verified log")
        elif snap.model_dump(exclude={"updated_at"}) != replayed.model_dump(exclude={"updated_at"}):
            bad(state_key(name), "snapshot differs from the replayed log (altered)")
    except ObjectNotFound:
        if keys:
            bad(state_key(name), "no state snapshot (readers replay the log)", "warning")
    except ValidationError:
        bad(state_key(name), "snapshot is corrupt")

    # Manifests: dense numbering, integrity against the log, blobs present and intact.
    vprefix = f"models/{name}/versions/"
    numbers: list[int] = []
    for key in store.list(vprefix):
        rest = key[len(vprefix) :]
        if "/" in rest or not rest.endswith(".json"):
            continue
        number = int(rest[: -len(".json")])
        numbers.append(number)
        report.versions += 1
        raw = store.get(key).data
        if number not in registered:
            bad(key, f"v{number} has no registration event", "warning")
        elif registered[number] != sha256(raw):
            bad(key, f"manifest of v{number} differs from the one registered (altered)")
        try:
            mv = ModelVersion.model_validate_json(raw)
        except ValidationError:
            bad(key, f"manifest of v{number} is corrupt")
            continue
        _verify_blob(reg, name, key, mv.artifact.key, mv.artifact.sha256, f"artifact of v{number}", report, bad)
        for gate, ref in mv.reports.items():
            _verify_blob(reg, name, key, ref.key, ref.sha256, f"{gate} report of v{number}", report, bad)
    if numbers != list(range(1, len(numbers) + 1)):
        bad(vprefix, f"version numbers are not contiguous: {numbers[:10]}…")

    # Pointers must name versions that exist.
    existing = set(numbers)
    for version, stage in state.stages.items():
        if version not in existing:
            bad(state_key(name), f"stage {stage} points at missing v{version}")
    for alias, version in state.aliases.items():
        if version not in existing:
            bad(state_key(name), f"alias {alias!r} points at missing v{version}")
    hint = reg._read_hint(name)
    if hint and hint not in existing:
        bad(f"models/{name}/latest", f"latest hint names missing v{hint}")
    for key in store.list(f"models/{name}/idempotency/"):
        record = json.loads(store.get(key).data)
        if "version" in record and record["version"] not in existing:
            bad(key, f"idempotency record points at missing v{record['version']}")


def _verify_blob(
    reg: Registry,
    name: str,
    owner: str,
    key: str,
    digest: str,
    what: str,
    report: VerifyReport,
    bad: Callable[[str, str], None],
) -> None:
    report.blobs += 1
    try:
        data = reg.store.get(key).data
    except ObjectNotFound:
        bad(owner, f"{what} is missing ({key})")
        return
    if sha256(data) != digest:
        bad(owner, f"{what} is altered: sha256 does not match")
