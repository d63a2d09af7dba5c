"""Approvals that cannot be walked around (issue 27): one test per walk-around, each refused with the store unchanged.

Every walk-around here succeeded on the code before this change; each test names, in a comment, the step that
went through then (checked by running these scenarios against that code, and each test against this code with its
fix reverted).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefect_model_registry.registry import ApprovalRules, Registry
from prefect_model_registry.registry.cli import main
from prefect_model_registry.registry.core.drafts import Draft
from prefect_model_registry.registry.core.keys import state_key
from prefect_model_registry.registry.core.log import ModelLog
from prefect_model_registry.registry.errors import (
    ApprovalRefused,
    ApprovalRequired,
    InvalidIdentity,
    InvalidMetadata,
    PolicyProposalNotFound,
    PromotionBlocked,
)
from tests.conftest import snapshot


@pytest.fixture
def local(tmp_path: Path) -> Registry:
    """A local registry (the rules are the lifecycle's, the same on every backend)."""
    return Registry.open(str(tmp_path / "registry"))


def _staged(reg: Registry, n: int, registrant: str = "dana") -> None:
    for v in range(1, n + 1):
        reg.register("m", b"model %d" % v, fmt="bytes", actor=registrant)
        reg.promote("m", v, "staging", reason="gates passed")


def _refused(reg: Registry, error: type[Exception], match: str, call: object) -> None:
    """``call()`` raises ``error`` and writes nothing."""
    before = snapshot(reg)
    with pytest.raises(error, match=match):
        call()  # type: ignore[operator]
    assert snapshot(reg) == before


# -- the first-version exemption ----------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["archive", "rollback then archive", "delete-model"])
def test_the_first_version_exemption_is_spent_once_for_good(local: Registry, how: str) -> None:
    reg = local
    _staged(reg, 3)
    reg.set_policy("m", ApprovalRules(), actor="admin", reason="prod needs a reviewer")
    first = reg.promote("m", 1, "production", reason="first")
    assert first.data["exempt"] == "first production version"
    assert "first production version: exempt by policy" in str(first)
    if how == "archive":
        reg.archive("m", 1, reason="retired")
    elif how == "rollback then archive":
        reg.record_decision("m", 2, approved=True, reviewer="lee")
        reg.promote("m", 2, "production", reason="approved")
        reg.rollback("m", reason="bad predictions")
        reg.archive("m", 1, reason="retired")
    else:
        reg.delete_model("m", confirm="m", grace_s=0)
        reg.register("m", b"model 4", fmt="bytes", actor="dana")
        reg.promote("m", 4, "staging", reason="gates passed")
    assert reg.state("m").production is None and not reg.state("m").production_history
    candidate = 4 if how == "delete-model" else 3
    # Before: production_history was empty again, so this went to production with no approval and no break-glass.
    _refused(reg, ApprovalRequired, "needs a recorded approval", lambda: reg.promote("m", candidate, "production"))
    assert reg.state("m").first_production == 1


def test_the_exemption_never_covers_staging(local: Registry) -> None:
    reg = local
    reg.register("m", b"model 1", fmt="bytes", actor="dana")
    reg.set_policy("m", ApprovalRules(stages=["staging", "production"]), actor="admin", reason="both stages")
    # Before: first_version_exempt exempted the first version from staging's approval too.
    _refused(reg, ApprovalRequired, "enter staging", lambda: reg.promote("m", 1, "staging", reason="x"))
    _refused(
        reg,
        ApprovalRequired,
        "enter staging",
        lambda: reg.promote("m", 1, "production", reason="x", through_staging=True),
    )
    reg.record_decision("m", 1, approved=True, reviewer="lee", target_stage="staging")
    reg.promote("m", 1, "staging", reason="approved for staging")
    assert reg.promote("m", 1, "production", reason="first").data["exempt"] == "first production version"


# -- approvals judged against the policy in force ----------------------------------------------------------------
def test_an_approval_given_before_a_tightening_does_not_promote(local: Registry) -> None:
    reg = local
    _staged(reg, 3)
    reg.set_policy("m", ApprovalRules(), actor="admin", reason="anyone may approve")
    reg.promote("m", 1, "production", reason="first")
    approval = reg.record_decision("m", 2, approved=True, reviewer="lee")
    assert approval.data["artifact_sha256"] == reg.get_version("m", 2).artifact.sha256
    assert approval.data["registrant"] == "dana"
    own = reg.record_decision("m", 3, approved=True, reviewer="dana")  # the registrant, before four-eyes
    reg.set_policy("m", ApprovalRules(reviewers=["dana", "mo"], four_eyes=True), actor="admin", reason="SOX")
    # Before: a recorded approval counted forever, whatever the policy said by now.
    _refused(reg, ApprovalRequired, "'lee' is not an allowed reviewer", lambda: reg.promote("m", 2, "production"))
    _refused(reg, ApprovalRequired, "four-eyes", lambda: reg.promote("m", 3, "production"))
    assert own.actor == "dana"
    reg.record_decision("m", 2, approved=True, reviewer="Mo")
    assert reg.promote("m", 2, "production", reason="approved by mo").data["archived"] == [1]


def test_a_promotion_judges_approvals_on_the_state_its_event_follows(tmp_path: Path) -> None:
    location = str(tmp_path / "registry")
    reg, admin = Registry.open(location), Registry.open(location)  # two processes' worth of memory
    _staged(reg, 2)
    reg.set_policy("m", ApprovalRules(), reason="anyone may approve")
    reg.promote("m", 1, "production", reason="first")
    reg.record_decision("m", 2, approved=True, reviewer="lee")
    assert reg.state("m").approved_by[2]  # reg's state, as it would plan on it
    admin.set_policy("m", ApprovalRules(reviewers=["mo"]), actor="admin", reason="tightened meanwhile")
    # reg plans on what it knew, loses the race for the log position, reads the tightening and plans again.
    _refused(reg, ApprovalRequired, "not an allowed reviewer", lambda: reg.promote("m", 2, "production"))


def test_an_approval_from_an_earlier_release_is_judged_by_the_policy_at_its_position(local: Registry) -> None:
    reg = local
    _staged(reg, 3)
    reg.set_policy("m", ApprovalRules(reviewers=["alice"]), actor="admin", reason="alice reviews")
    reg.promote("m", 1, "production", reason="first")
    log = ModelLog(reg.store, "m")
    # Approvals as an earlier release wrote them: no artifact hash, no registrant. Bob's slipped past a policy read
    # before its append; alice's was allowed.
    for version, reviewer in ((2, "bob"), (3, "alice")):
        log.append(lambda _st, v=version, r=reviewer: Draft("approved", v, r, "", None, {"target_stage": "production"}))
    reg.set_policy("m", ApprovalRules(reviewers=["alice"], four_eyes=True), actor="admin", reason="stricter")
    _refused(reg, ApprovalRequired, "'bob' is not an allowed reviewer", lambda: reg.promote("m", 2, "production"))
    assert reg.promote("m", 3, "production", reason="approved under the policy of its time").data["archived"] == [1]


# -- one identity rule ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spelling", ["Dana", " DANA ", "dana\u200b", "\uff44\uff41\uff4e\uff41", "da\u00adna"])
def test_no_spelling_of_the_registrant_passes_four_eyes(local: Registry, spelling: str) -> None:
    reg = local
    _staged(reg, 1)
    reg.set_policy("m", ApprovalRules(four_eyes=True), actor="admin", reason="four eyes")
    # Before: compared raw, each spelling was someone other than the registrant "dana".
    _refused(reg, ApprovalRefused, "four-eyes", lambda: reg.record_decision("m", 1, approved=True, reviewer=spelling))
    # The same rule holds for a run's own four-eyes setting and its reviewer list.
    _refused(
        reg,
        ApprovalRefused,
        "four-eyes",
        lambda: reg.record_decision("m", 1, approved=True, reviewer=spelling, four_eyes=True),
    )


def test_reviewer_lists_use_the_same_rule_and_a_name_of_nothing_is_refused(local: Registry) -> None:
    reg = local
    _staged(reg, 1)
    reg.set_policy("m", ApprovalRules(reviewers=["Lee Park"]), actor="admin", reason="lee reviews")
    for nobody in ("\u200b", " \u2060 ", "\u202e"):
        _refused(
            reg,
            InvalidIdentity,
            "names nobody",
            lambda n=nobody: reg.record_decision("m", 1, approved=True, reviewer=n),
        )
        _refused(reg, InvalidIdentity, "names nobody", lambda n=nobody: reg.promote("m", 1, "archived", actor=n))
        _refused(
            reg,
            InvalidIdentity,
            "names nobody",
            lambda n=nobody: reg.set_policy("m", ApprovalRules(reviewers=["lee park", n]), reason="x"),
        )
    event = reg.record_decision("m", 1, approved=True, reviewer="  lee\u00a0 PARK")
    assert event.actor == "lee\u00a0 PARK"  # recorded as given (trimmed); compared normalised


# -- protected aliases, rejected versions and rollback -----------------------------------------------------------
def _two_in_production(reg: Registry) -> None:
    _staged(reg, 3)
    reg.set_policy("m", ApprovalRules(), actor="admin", reason="prod needs a reviewer")
    reg.promote("m", 1, "production", reason="first", aliases=["champion"])
    reg.record_decision("m", 2, approved=True, reviewer="lee")
    reg.promote("m", 2, "production", reason="approved", aliases=["champion"])


@pytest.mark.parametrize("blocked_by", ["rejection", "failed gate"])
def test_rollback_never_restores_a_rejected_or_blocked_version(local: Registry, blocked_by: str) -> None:
    reg = local
    _two_in_production(reg)
    if blocked_by == "rejection":
        reg.record_decision("m", 1, approved=False, reviewer="lee", comment="leaks PII")
    else:
        reg.record_report("m", 1, "fairness", {"passed": False, "checks": []}, passed=False)
    # Before: rollback put v1 back in production (and champion on it, with --move-aliases).
    _refused(reg, PromotionBlocked, "cannot roll back to v1", lambda: reg.rollback("m", reason="incident"))
    _refused(reg, PromotionBlocked, "cannot roll back to v1", lambda: reg.rollback("m", reason="x", move_aliases=True))
    event = reg.rollback("m", reason="INC-7: v2 is worse", break_glass=True, move_aliases=True)
    assert event.data["break_glass"] is True and "BREAK-GLASS" in str(event)
    st = reg.state("m")
    assert st.production == 1 and st.aliases == {"champion": 2}  # break-glass restores; champion stays off v1


def test_a_protected_alias_never_points_at_a_rejected_version(local: Registry) -> None:
    reg = local
    _two_in_production(reg)
    reg.record_decision("m", 3, approved=False, reviewer="lee", comment="worse on Q3")
    # Before: any alias could point at a rejected version, and load("m@champion") served it.
    _refused(reg, PromotionBlocked, "protected", lambda: reg.set_alias("m", "champion", 3))
    # An unreviewed version cannot carry it either: it moves with the promotion that its approval covers.
    reg.register("m", b"model 4", fmt="bytes", actor="dana")
    _refused(reg, ApprovalRequired, "protected", lambda: reg.set_alias("m", "champion", 4))
    # A rejection takes protected aliases off the version in the same event, and says so.
    rejection = reg.record_decision("m", 2, approved=False, reviewer="lee", comment="bias found")
    assert rejection.data["removed_aliases"] == ["champion"] and "removed protected alias 'champion'" in str(rejection)
    assert "champion" not in reg.state("m").aliases
    reg.set_alias("m", "champion", 1)  # v1 was in production, and is not blocked: allowed
    # A policy's own protected aliases; a failed gate removes them as a rejection does.
    reg.set_policy("m", ApprovalRules(protected_aliases=["shadow"]), actor="admin", reason="protect shadow")
    reg.set_alias("m", "shadow", 1)
    failed = reg.record_report("m", 1, "drift", {"passed": False, "checks": []}, passed=False)
    assert failed is not None and failed.data["removed_aliases"] == ["champion", "shadow"]
    assert reg.state("m").aliases == {}
    reg.set_alias("m", "canary", 3)  # an alias the policy does not protect is the caller's business


# -- loosening and break-glass -----------------------------------------------------------------------------------
def test_loosening_takes_two_people(local: Registry) -> None:
    reg = local
    _staged(reg, 2)
    strict = ApprovalRules(reviewers=["alice", "bob"], four_eyes=True, first_version_exempt=False)
    reg.set_policy("m", strict, actor="alice", reason="SOX")
    for looser in (
        ApprovalRules(stages=[], reviewers=["alice", "bob"], four_eyes=True, first_version_exempt=False),
        ApprovalRules(reviewers=["alice", "bob", "mallory"], four_eyes=True, first_version_exempt=False),
        ApprovalRules(four_eyes=True, first_version_exempt=False),
        ApprovalRules(reviewers=["alice", "bob"], first_version_exempt=False),
        ApprovalRules(reviewers=["alice", "bob"], four_eyes=True),
    ):
        # Before: anyone could loosen a policy in one step (pmr policy set NAME --no-stages).
        _refused(reg, ApprovalRequired, "two", lambda r=looser: reg.set_policy("m", r, actor="alice", reason="x"))
    tighter = strict.model_copy(update={"reviewers": ["alice"]})
    assert reg.set_policy("m", tighter, actor="alice", reason="only alice").type == "policy_set"  # one step
    loose = ApprovalRules(stages=[])
    proposal = reg.propose_policy("m", loose, actor="alice", reason="the model is retired")
    assert reg.policy("m") == tighter and reg.state("m").policy_proposal["seq"] == proposal.seq
    for same in ("alice", " ALICE", "alice\u200b"):
        _refused(reg, ApprovalRefused, "another person", lambda a=same: reg.approve_policy("m", actor=a))
    _refused(reg, ApprovalRefused, "not an allowed reviewer", lambda: reg.approve_policy("m", actor="bob"))
    _refused(reg, PolicyProposalNotFound, "#1", lambda: reg.approve_policy("m", 1, actor="carol"))


def test_loosening_is_approved_by_a_listed_reviewer_and_takes_effect_then(local: Registry) -> None:
    reg = local
    _staged(reg, 2)
    reg.set_policy("m", ApprovalRules(reviewers=["alice", "bob"]), actor="alice", reason="SOX")
    proposal = reg.propose_policy("m", ApprovalRules(stages=[]), actor="alice", reason="retired")
    _refused(reg, ApprovalRefused, "not an allowed reviewer", lambda: reg.approve_policy("m", actor="mallory"))
    approved = reg.approve_policy("m", proposal.seq, actor="Bob", reason="agreed")
    assert approved.data["proposal"] == proposal.seq and approved.data["proposed_by"] == "alice"
    assert reg.policy("m") == ApprovalRules(stages=[]) and reg.state("m").policy_proposal is None
    _refused(reg, PolicyProposalNotFound, "no pending", lambda: reg.approve_policy("m", actor="bob"))
    assert reg.promote("m", 2, "production", reason="no stage needs an approval now").data["to"] == "production"


@pytest.mark.parametrize("reason", ["\u200b", "\u200b\u200b\u200b\u200b", "  a  ", "a\u200bb", "\u2060\u202e!!"])
def test_break_glass_needs_a_reason_a_reader_can_see(local: Registry, reason: str) -> None:
    reg = local
    _staged(reg, 2)
    reg.set_policy("m", ApprovalRules(first_version_exempt=False), actor="admin", reason="strict")
    # Before: any non-blank reason was enough, an invisible one included.
    _refused(
        reg,
        InvalidMetadata,
        "visible characters",
        lambda: reg.promote("m", 1, "production", reason=reason, break_glass=True),
    )
    event = reg.promote("m", 1, "production", reason="INC-1", break_glass=True)
    assert event.type == "break_glass"


# -- the command line --------------------------------------------------------------------------------------------
def pmr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def test_pmr_policy_propose_approve_and_pending(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from prefect_model_registry.flows.cli import (
        main as flows_main,  # `pmr pending` lives with the flows (it also asks Prefect)
    )

    location = str(tmp_path / "registry")
    reg = Registry.open(location)
    _staged(reg, 2)
    r = ["--registry", location]
    assert pmr(capsys, *r, "--actor", "alice", "policy", "set", "m", "--reason", "SOX", "--four-eyes")[0] == 0
    code, _, err = pmr(capsys, *r, "--actor", "alice", "policy", "set", "m", "--reason", "off", "--no-stages")
    assert code == 1 and "pmr policy propose" in err and "Traceback" not in err
    code, out, _ = pmr(capsys, *r, "--actor", "alice", "policy", "propose", "m", "--reason", "off", "--no-stages")
    assert code == 0 and "PROPOSED" in out
    with pytest.raises(SystemExit):
        flows_main([*r, "pending", "m"])
    out = capsys.readouterr().out
    assert "policy change #" in out and "proposed by alice" in out
    code, _, err = pmr(capsys, *r, "--actor", "ALICE", "policy", "approve", "m", "--reason", "me again")
    assert code == 1 and "another person" in err
    code, out, _ = pmr(capsys, *r, "--actor", "bob", "policy", "approve", "m", "--reason", "agreed")
    assert code == 0 and "APPROVED" in out and reg.policy("m") == ApprovalRules(stages=[])
    code, out, _ = pmr(capsys, *r, "promote", "m", "1", "--to", "production", "--reason", "r", "--alias", "champion")
    assert code == 0 and "champion" in out and reg.state("m").aliases == {"champion": 1}
    code, out, _ = pmr(capsys, *r, "history", "m")
    assert code == 0 and "APPROVED" in out


def test_an_older_snapshot_is_replayed_for_the_new_records(tmp_path: Path) -> None:
    location = str(tmp_path / "registry")
    reg = Registry.open(location)
    _staged(reg, 2)
    reg.set_policy("m", ApprovalRules(), reason="p")
    reg.promote("m", 1, "production", reason="first")
    reg.archive("m", 1, reason="retired")
    state = reg.state("m")
    # A snapshot as an earlier release wrote it: without the records this change added.
    old = state.model_dump(mode="json", exclude={"first_production", "approved_by", "policy_proposal"})
    reg.store.put(state_key("m"), json.dumps(old).encode())
    fresh = Registry.open(location)
    assert fresh.state("m").first_production == 1  # replayed from the log, not taken from the snapshot
    with pytest.raises(ApprovalRequired):
        fresh.promote("m", 2, "production")
