"""The approval policy a model keeps in its log: set (tighten), propose and approve (loosen, two people)."""

from __future__ import annotations

from prefect_model_registry.registry.core.checks import (
    check_flag,
    check_version_number,
)
from prefect_model_registry.registry.core.drafts import Draft
from prefect_model_registry.registry.core.idempotency import op_fingerprint
from prefect_model_registry.registry.core.identity import (
    listed,
    same_person,
)
from prefect_model_registry.registry.core.lifecycle import (
    protected_on_blocked,
    rules_of,
)
from prefect_model_registry.registry.core.policy import ApprovalRules, loosening
from prefect_model_registry.registry.errors import (
    ApprovalRefused,
    ApprovalRequired,
    PolicyProposalNotFound,
)
from prefect_model_registry.registry.models import (
    Event,
    ModelState,
)
from prefect_model_registry.registry.names import check_model_name
from prefect_model_registry.registry.operations.base import (
    RegistryBase,
    check_rules,
    removing,
)


class Policies(RegistryBase):
    """The approval policy a model keeps in its log: set (tighten), propose and approve (loosen, two people)."""

    def set_policy(
        self,
        name: str,
        rules: ApprovalRules,
        *,
        actor: str | None = None,
        reason: str = "",
        only_if_unset: bool = False,
        operation_key: str | None = None,
    ) -> Event | None:
        """Keep an approval policy for ``name`` in its audit log; every later promotion is checked against it.

        One step only when it tightens (or sets the first policy): a change that lets through anything the policy
        in force does not (a stage dropped, a reviewer added or the list dropped, four-eyes off, the exemption back
        on, an alias unprotected) needs two people: :meth:`propose_policy`, then :meth:`approve_policy` by another.
        Judged inside the append, on the policy the event follows. Newly protected aliases that point at a
        rejected or gate-blocked version are removed in the same event.

        Args:
            name: model name.
            rules: which stages need an approval, who may approve, four-eyes, first-version exemption, protected
                aliases.
            actor: who sets it.
            reason: why (kept in the audit log).
            only_if_unset: do nothing when the model already has a policy (how a pipeline records its default
                without loosening what an administrator set).
            operation_key: a retry with the same key returns the event that landed.

        Returns:
            The ``policy_set`` event, or ``None`` when nothing changed.

        Raises:
            ApprovalRequired: the change loosens the policy in force (propose it instead).

        """
        check_model_name(name)
        check_rules(rules)
        check_flag(only_if_unset, "only_if_unset")
        op_key, actor = self._opening(operation_key, actor, reason=reason)
        self._require_model(name)
        data = rules.model_dump(mode="json")

        def plan(st: ModelState) -> Draft | None:
            current = rules_of(st)
            if current == rules or (only_if_unset and st.policy is not None):
                return None
            looser = loosening(current, rules, exemption_spent=st.first_production is not None)
            if looser:
                raise ApprovalRequired(
                    f"this change loosens the approval policy of {name} ({'; '.join(looser)}): loosening takes two "
                    f"people (pmr policy propose, then another person runs pmr policy approve)"
                )
            return Draft("policy_set", None, actor, reason, None, {**data, **removing(protected_on_blocked(st, rules))})

        return self._write(name, op_key, "set_policy", op_fingerprint("set_policy", **data), plan)

    def propose_policy(
        self,
        name: str,
        rules: ApprovalRules,
        *,
        actor: str | None = None,
        reason: str = "",
        operation_key: str | None = None,
    ) -> Event | None:
        """Propose a new approval policy for ``name``: the first of the two events a loosening takes.

        It changes nothing yet: it waits (``pmr pending``) until another person approves it with
        :meth:`approve_policy`. A newer proposal replaces a pending one.

        Returns:
            The ``policy_proposed`` event, or ``None`` when ``rules`` are already the policy in force.

        """
        check_model_name(name)
        check_rules(rules)
        op_key, actor = self._opening(operation_key, actor, reason=reason)
        self._require_model(name)
        data = {"rules": rules.model_dump(mode="json")}

        def plan(st: ModelState) -> Draft | None:
            if rules_of(st) == rules:
                return None
            return Draft("policy_proposed", None, actor, reason, None, data)

        return self._write(name, op_key, "propose_policy", op_fingerprint("propose_policy", **data), plan)

    def approve_policy(
        self,
        name: str,
        proposal: int | None = None,
        *,
        actor: str | None = None,
        reason: str = "",
        operation_key: str | None = None,
    ) -> Event:
        """Approve the pending policy proposal of ``name``: it takes effect with this event.

        The approver must be another identity than the proposer (under the identity rule) and, when the policy in
        force lists reviewers, one of them; both are checked inside the append, on the state the event follows.

        Args:
            name: model name.
            proposal: the proposal's event number (``pmr pending`` shows it); default the pending one.
            actor: who approves.
            reason: why (kept in the audit log).
            operation_key: a retry with the same key returns the event that landed.

        Raises:
            PolicyProposalNotFound: no proposal waits, or not the one named.
            ApprovalRefused: the approver proposed it, or is not a listed reviewer.

        """
        check_model_name(name)
        if proposal is not None:
            check_version_number(proposal)
        op_key, actor = self._opening(operation_key, actor, reason=reason)
        self._require_model(name)

        def plan(st: ModelState) -> Draft:
            pending = st.policy_proposal
            if pending is None or (proposal is not None and pending["seq"] != proposal):
                waiting = f" (#{pending['seq']} waits)" if pending is not None else ""
                raise PolicyProposalNotFound(
                    f"{name} has no pending policy proposal{f' #{proposal}' if proposal is not None else ''}{waiting}"
                )
            if same_person(actor, pending["by"]):
                raise ApprovalRefused(
                    f"{actor!r} proposed policy change #{pending['seq']} of {name}: another person must approve it"
                )
            current = rules_of(st)
            if current is not None and current.reviewers is not None and not listed(actor, current.reviewers):
                raise ApprovalRefused(f"{actor!r} is not an allowed reviewer of {name} (policy of {name})")
            rules = ApprovalRules.model_validate(pending["rules"])
            data = {"proposal": pending["seq"], "proposed_by": pending["by"], "rules": pending["rules"]}
            return Draft(
                "policy_approved", None, actor, reason, None, {**data, **removing(protected_on_blocked(st, rules))}
            )

        request = op_fingerprint("approve_policy", proposal=proposal)
        return self._write_one(name, op_key, "approve_policy", request, plan)
