"""Keys bind their caller: a registration key reused by someone else, or with other metadata, is a conflict (issue 27).

Before, a key reused by another explicit actor returned the first caller's version, as if it were theirs. Artifact
bytes alone may differ between attempts (skops output is not byte-stable), so a retry by the same caller with the
same metadata still gets its version back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.cli import main
from prefect_model_registry.registry.errors import IdempotencyConflict
from tests.conftest import snapshot

INFO = VersionInfo(metrics={"auc": 0.91}, params={"C": 1.0}, tags={"team": "risk"}, description="v1")


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    reg = Registry.open(str(tmp_path / "reg"))
    reg.register("m", b"alice's model", INFO, fmt="bytes", actor="alice", operation_key="run-42/register")
    return reg


def test_a_key_reused_by_another_actor_is_a_conflict(reg: Registry) -> None:
    before = snapshot(reg)
    with pytest.raises(IdempotencyConflict, match="alice"):
        reg.register("m", b"mallory's model", INFO, fmt="bytes", actor="mallory", operation_key="run-42/register")
    assert snapshot(reg) == before


def test_a_key_reused_with_other_metadata_is_a_conflict(reg: Registry) -> None:
    before = snapshot(reg)
    other = INFO.model_copy(update={"metrics": {"auc": 0.99}})
    with pytest.raises(IdempotencyConflict):
        reg.register("m", b"alice's model", other, fmt="bytes", actor="alice", operation_key="run-42/register")
    assert snapshot(reg) == before


def test_the_same_caller_retrying_with_other_bytes_gets_its_version(reg: Registry) -> None:
    # Re-serialised: other bytes, same metadata, the same person however spelled.
    again = reg.register(
        "m", b"alice's model, again", INFO, fmt="bytes", actor=" Alice", operation_key="run-42/register"
    )
    assert again.version == 1 and again.created_by == "alice"
    assert reg.register("m", b"x", INFO, fmt="bytes", operation_key="run-42/register").version == 1  # no actor given


def test_a_claim_in_flight_is_bound_too(reg: Registry) -> None:
    # A claim whose attempt has not made its version yet (another process, alive) names its actor.
    claims = reg._claims
    record = claims.claim_registration("m", "run-43/register", "request", actor="alice")[1]
    assert record["actor"] == "alice"
    with pytest.raises(IdempotencyConflict, match="alice"):
        claims.claim_registration("m", "run-43/register", "request", actor="mallory", explicit_actor=True)


def test_pmr_register_without_a_key_is_bound_to_its_actor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"same bytes")
    r = ["--registry", str(tmp_path / "reg"), "--json"]
    for actor in ("alice", "alice", "bob"):
        with pytest.raises(SystemExit):
            main([*r, "--actor", actor, "register", "m", str(model), "--format", "bytes"])
    out = capsys.readouterr().out
    versions = [int(line.split(":")[1].strip(" ,")) for line in out.splitlines() if line.startswith('  "version"')]
    assert versions == [1, 1, 2]  # alice's retry returns her version; bob's identical command is his own
