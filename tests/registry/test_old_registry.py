"""A registry written by an older release (tests/data/registry_v0_1, every event type in its logs) reads,
verifies and takes new writes with this code, and none of its old objects changes by a byte.

The fixture is committed test data, written once by the code before the namespace change (its README names the
commit); it stands for every bucket written by earlier releases and is never regenerated.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.maintenance.verify import verify

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "registry_v0_1"
EXPECTED: dict[str, Any] = json.loads((FIXTURE / "expected.json").read_text())
EVENT_TYPES = {
    "registered", "stage_changed", "break_glass", "alias_set", "alias_removed", "validated", "approved",
    "rejected", "described", "tagged", "deleted", "rolled_back", "policy_proposed", "policy_approved",
    "approval_timed_out", "decision_refused", "scored", "policy_set",
}  # fmt: skip


def sums(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` as in the fixture's SHA256SUMS."""
    lines = (root / "SHA256SUMS").read_text().splitlines()
    return {path.strip(): digest for digest, path in (line.split(maxsplit=1) for line in lines)}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def old(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the old registry (reads may refresh hints; the committed fixture stays as written)."""
    monkeypatch.setenv("PMR_CACHE_DIR", "off")
    copy = tmp_path / "registry_v0_1"
    shutil.copytree(FIXTURE, copy)
    return copy


def test_the_committed_fixture_is_as_written_and_holds_every_event_type() -> None:
    for rel, want in sums(FIXTURE).items():
        assert digest(FIXTURE / rel) == want, rel
    seen = {t for model in EXPECTED["models"].values() for t in model["event_types"]}
    assert seen == EVENT_TYPES


def test_old_registry_reads_as_the_old_code_read_it(old: Path) -> None:
    reg = Registry.open(str(old / "registry"), create=False)
    assert sorted(reg.models()) == sorted(m for m, e in EXPECTED["models"].items() if e["latest_version"])
    for name, want in EXPECTED["models"].items():
        history = reg.history(name)
        assert [e.type for e in history] == want["event_types"], name
        assert [(e.seq, e.type, e.version, e.actor) for e in history] == [
            (e["seq"], e["type"], e["version"], e["actor"]) for e in want["events"]
        ]
        state = reg.state(name)
        assert dict(state.aliases) == want["aliases"]
        assert {str(v): s for v, s in state.stages.items() if s != "none"} == {
            k: s for k, s in want["stages"].items() if s != "none"
        }
        assert state.production == want["production"]
        assert sorted(state.deleted) == want["deleted"]
        assert state.model_description == want["model_description"]
        policy = reg.policy(name)
        assert (policy.model_dump(mode="json") if policy else None) == want["policy"]
        for v in want["versions"]:
            if v["deleted"]:
                continue
            mv = reg.view(name, v["version"])
            assert (mv.artifact.sha256, mv.metrics, mv.tags, mv.description) == (
                v["artifact_sha256"],
                v["metrics"],
                v["tags"],
                v["description"],
            )
            model = reg.load(f"models:/{name}/{v['version']}")
            assert model.predict(np.array(EXPECTED["probe_rows"])).tolist() == v["predictions"]


def test_old_registry_verifies_clean(old: Path) -> None:
    reg = Registry.open(str(old / "registry"), create=False)
    heads = {name: m["head"] for name, m in EXPECTED["models"].items()}
    report = verify(reg, expected_heads=heads)
    errors = [f for f in report.findings if f.severity == "error"]
    assert report.ok and not errors, report.to_dict()
    assert (report.to_dict()["models"], report.to_dict()["versions"], report.to_dict()["events"]) == (3, 8, 39)


def test_new_writes_on_an_old_registry_leave_every_old_object_unchanged(old: Path) -> None:
    reg = Registry.open(str(old / "registry"), create=False)
    est = LogisticRegression().fit(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]] * 4), [0, 1] * 4)
    mv = reg.register_model("churn", est, VersionInfo(metrics={"accuracy": 0.9}), actor="new-release")
    reg.promote("churn", mv.version, "staging", actor="new-release", reason="after the upgrade")
    reg.set_alias("fraud", "shadow", 2, actor="new-release", reason="after the upgrade")
    reg.tag("churn", 4, {"upgraded": "yes"}, actor="new-release")
    reg.flush()
    assert mv.version == 6
    fresh = Registry.open(str(old / "registry"), create=False)
    assert fresh.state("churn").stage_of(6) == "staging" and fresh.state("fraud").aliases["shadow"] == 2
    assert [e.type for e in fresh.history("churn")][-3:] == ["registered", "stage_changed", "tagged"]
    report = verify(fresh)
    assert report.ok, report.to_dict()
    # Appends only: every object the old release wrote is byte for byte what it wrote, except the derived
    # hints a reader may refresh (state snapshots, the latest-version hint and the index), which are caches.
    changed = [rel for rel, want in sums(old).items() if digest(old / rel) != want]
    assert all(_is_cache(rel) for rel in changed), changed
    immutable = [rel for rel in sums(old) if not _is_cache(rel)]
    assert any("/events/" in rel for rel in immutable) and any("/versions/" in rel for rel in immutable)


def _is_cache(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return name in {"state.json", "latest", "latest.json"} or "/index/" in rel or rel.startswith("registry/index")
