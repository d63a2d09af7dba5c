"""Gate verdicts and reviewers' decisions: reports, approvals, rejections, timeouts and refusals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prefect_model_registry.registry.core import (
    versions,
)
from prefect_model_registry.registry.core.checks import (
    check_flag,
    check_gate,
    check_gate_report,
    check_op_key,
    check_text,
)
from prefect_model_registry.registry.core.drafts import Draft
from prefect_model_registry.registry.core.idempotency import op_fingerprint
from prefect_model_registry.registry.core.identity import (
    check_identity,
    listed,
    same_person,
)
from prefect_model_registry.registry.core.lifecycle import (
    protected_on,
    rules_of,
)
from prefect_model_registry.registry.core.policy import check_reviewer
from prefect_model_registry.registry.errors import (
    ApprovalRefused,
    InvalidMetadata,
)
from prefect_model_registry.registry.models import (
    Event,
    ModelState,
    canonical_json,
)
from prefect_model_registry.registry.names import check_model_name, check_stage
from prefect_model_registry.registry.operations.base import (
    RegistryBase,
    check_texts,
    removing,
)


class Decisions(RegistryBase):
    """Gate verdicts and reviewers' decisions: reports, approvals, rejections, timeouts and refusals."""

    def record_report(
        self,
        name: str,
        version: int,
        gate: str,
        report: Mapping[str, Any],
        *,
        passed: bool,
        actor: str | None = None,
        run_id: str | None = None,
        operation_key: str | None = None,
    ) -> Event | None:
        """Store a gate report beside a version and log the verdict; a failure blocks promotion.

        The report is stored content-addressed first, then the ``validated`` event records its hash; the
        current report of each gate is the one its latest event names. Recording the report that is already
        current (a flow re-run after a suspend, a retried task) is a no-op and returns ``None``; a retry after
        the report was stored but before its event landed appends the event.
        """
        check_model_name(name)
        check_gate(gate)
        check_gate_report(report)  # typed as the verdict and the event read it (fuzzing found a TypeError)
        check_flag(passed, "passed")
        op_key, actor = self._opening(operation_key, actor, run_id=run_id)
        raw = canonical_json(dict(report))
        failed = [c.get("name") for c in report.get("checks", []) if isinstance(c, dict) and not c.get("passed")]
        reason = "" if passed else "failed checks: " + ", ".join(str(f) for f in failed[:5])
        self.get_version(name, version)
        digest = versions.put_blob(self.store, raw)
        data = {"gate": gate, "passed": passed, "report_sha256": digest}

        def plan(st: ModelState) -> Draft | None:
            if st.reports.get(version, {}).get(gate) == digest:
                return None  # this very report is already the gate's current one
            removed = [] if passed else protected_on(st, version)  # never left on a gate-blocked version
            return Draft("validated", version, actor, reason, run_id, {**data, **removing(removed)})

        request = op_fingerprint("record_report", version=version, gate=gate, report=digest, passed=passed)
        return self._write(name, op_key, "record_report", request, plan)

    def record_decision(
        self,
        name: str,
        version: int,
        *,
        approved: bool,
        reviewer: str,
        comment: str = "",
        run_id: str | None = None,
        four_eyes: bool = False,
        allowed_reviewers: Iterable[str] | None = None,
        target_stage: str = "production",
        operation_key: str | None = None,
    ) -> Event:
        """Log a reviewer's approval or rejection of ``version``; a rejection blocks promotion.

        Names are compared under the registry's identity rule (``identity``), and the model's policy
        is checked inside the append, on the state the event follows. An approval names the version's artifact
        hash and registrant; a promotion judges it again against the policy in force then. A rejection removes the
        version's protected aliases in the same event.

        Raises:
            ApprovalRefused: the reviewer is not allowed, or is the registrant while four-eyes is on (by the
                arguments or by the model's own policy, see :meth:`set_policy`).
            InvalidMetadata: no reviewer, or a rejection without a comment.
            InvalidIdentity: the reviewer's name normalises to nothing.

        """
        check_model_name(name)
        check_flag(approved, "approved")
        check_flag(four_eyes, "four_eyes")
        check_stage(target_stage)
        op_key = check_op_key(operation_key)
        reviewer = check_text(reviewer if reviewer is not None else "", "reviewer", max_len=256).strip()
        check_text(comment, "comment")
        check_texts(run_id=run_id)
        allowed = None
        if allowed_reviewers is not None:
            allowed = {check_text(r, "an allowed reviewer", max_len=256) for r in allowed_reviewers}
        mv = self.get_version(name, version)
        if not reviewer:
            raise InvalidMetadata("a decision needs the reviewer's name")
        check_identity(reviewer, "reviewer")
        if not approved and not comment.strip():
            raise InvalidMetadata("a rejection needs a comment saying why")
        if allowed is not None and not listed(reviewer, allowed):
            raise ApprovalRefused(f"{reviewer!r} is not an allowed reviewer of {name}")
        if four_eyes and same_person(reviewer, mv.created_by):
            raise ApprovalRefused(
                f"four-eyes rule: {reviewer!r} registered {name} v{version} (as {mv.created_by!r}) "
                "and cannot approve it"
            )
        kind = "approved" if approved else "rejected"
        data: dict[str, Any] = {"target_stage": target_stage}
        if approved:
            data |= {"artifact_sha256": mv.artifact.sha256, "registrant": mv.created_by}

        def plan(st: ModelState) -> Draft:
            check_reviewer(rules_of(st), name, version, reviewer, mv.created_by)  # the policy this event follows
            removed = [] if approved else protected_on(st, version)
            return Draft(kind, version, reviewer, comment, run_id, {**data, **removing(removed)})

        request = op_fingerprint("decision", version=version, kind=kind, reviewer=reviewer, target=target_stage)
        return self._write_one(name, op_key, "record_decision", request, plan)

    def record_timeout(
        self,
        name: str,
        version: int,
        *,
        actor: str | None = None,
        reason: str = "",
        run_id: str | None = None,
        operation_key: str | None = None,
    ) -> Event:
        """Log that an approval wait ended with no decision (the version keeps its stage)."""
        check_model_name(name)
        op_key, actor = self._opening(operation_key, actor, reason=reason, run_id=run_id)
        self.get_version(name, version)
        return self._write_one(
            name,
            op_key,
            "record_timeout",
            op_fingerprint("record_timeout", version=version),
            lambda _st: Draft("approval_timed_out", version, actor, reason, run_id, {}),
        )

    def record_refusal(
        self,
        name: str,
        version: int,
        *,
        reviewer: str,
        reason: str,
        run_id: str | None = None,
        operation_key: str | None = None,
    ) -> Event:
        """Log a decision the rules refused (not an allowed reviewer, four-eyes): who tried, and why it failed.

        Changes nothing else; the version waits for another decision. The flows call it when
        :meth:`record_decision` raises :class:`ApprovalRefused`, so a refused reviewer shows in the history.
        """
        check_model_name(name)
        op_key = check_op_key(operation_key)
        reviewer = check_text(reviewer if reviewer is not None else "", "reviewer", max_len=256).strip() or "unknown"
        check_texts(reason=reason, run_id=run_id)
        self.get_version(name, version)
        return self._write_one(
            name,
            op_key,
            "record_refusal",
            op_fingerprint("record_refusal", version=version, reviewer=reviewer),
            lambda _st: Draft("decision_refused", version, reviewer, reason, run_id, {}),
        )
