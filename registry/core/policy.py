"""The approval policy a model keeps in its own audit log, enforced by the lifecycle for every caller.

A ``policy_set`` event records which stages need a recorded approval, who may approve, whether the registrant may
approve their own version (four-eyes), whether a model's very first production version is exempt, and which
aliases are protected (``champion`` is whenever production is). The lifecycle then refuses a promotion to a
protected stage unless an ``approved`` event for that version and stage is in the log and still counts, whoever
asks: a flow, ``pmr promote`` or a direct API call.

- **Approvals are judged when they are used.** An approval names the version's artifact hash and registrant; a
  promotion re-checks every recorded approval against the policy in force (reviewer list, four-eyes), inside the
  append, on the state the event follows. An approval recorded by an earlier release (no artifact hash) is judged
  by the policy in force at its own log position.
- **The first-version exemption is spent once per model, forever**, and only for production: once any version has
  entered production (``ModelState.first_production``) it never applies again, whatever is archived, rolled back
  or deleted. A promotion that uses it says so in its event (``exempt``).
- **Names are compared under one identity rule** (:mod:`prefect_model_registry.registry.core.identity`).
- **Loosening takes two people**: ``policy_proposed`` by one, ``policy_approved`` by another (a listed reviewer, or
  anyone else when none is listed). A tightening is one ``policy_set``.

A break-glass override exists for incidents; it is an audit event of its own (``break_glass``). Rollback to a
version that was in production before stays allowed (it was approved, or exempt, when it got there), unless it
was rejected or failed a gate since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from prefect_model_registry.registry.core.identity import listed, same_person
from prefect_model_registry.registry.errors import ApprovalRefused, ApprovalRequired
from prefect_model_registry.registry.models import ModelState

#: The alias a protected production stage protects with it.
CHAMPION = "champion"

#: What ``exempt`` says in a promotion's event that used the first-version exemption.
FIRST_VERSION_EXEMPT = "first production version"


def production_only() -> list[Literal["staging", "production"]]:
    """The default of ``ApprovalRules.stages``: only production needs an approval."""
    return ["production"]


class ApprovalRules(BaseModel):
    """Who must approve what, for one model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: list[Literal["staging", "production"]] = Field(
        default_factory=production_only, description="Stages a version may enter only with an approval."
    )
    reviewers: list[str] | None = Field(default=None, description="Who may approve (anyone when None).")
    four_eyes: bool = Field(default=False, description="The registrant may not approve their own version.")
    first_version_exempt: bool = Field(
        default=True,
        description="A model's first production version needs no approval (nothing to protect yet); spent once.",
    )
    protected_aliases: list[str] = Field(
        default_factory=list,
        description="Aliases that may point only at a version fit for production (champion too, with production).",
    )

    def protected(self) -> frozenset[str]:
        """Every protected alias: the listed ones, and ``champion`` whenever production needs an approval."""
        return frozenset(self.protected_aliases) | ({CHAMPION} if "production" in self.stages else frozenset())


@dataclass(frozen=True)
class Subject:
    """What an approval is of: a version's registrant and artifact hash, as its manifest records them."""

    registrant: str
    artifact_sha256: str


def rules_from(policy: dict[str, Any] | None) -> ApprovalRules | None:
    """The rules a ``policy`` dict of the state (or of an approval's position) holds, if any."""
    return ApprovalRules.model_validate(policy) if policy is not None else None


def exemption_applies(rules: ApprovalRules | None, state: ModelState, to: str) -> bool:
    """Whether the first-version exemption covers moving a version to ``to`` now (production only, once)."""
    return (
        rules is not None
        and to == "production"
        and to in rules.stages
        and rules.first_version_exempt
        and state.first_production is None
    )


def decision_refusal(rules: ApprovalRules | None, reviewer: str, registrant: str | None) -> str | None:
    """Why ``rules`` do not let ``reviewer`` decide on a version ``registrant`` registered (None: they do)."""
    if rules is None:
        return None
    if rules.reviewers is not None and not listed(reviewer, rules.reviewers):
        return f"{reviewer!r} is not an allowed reviewer"
    if rules.four_eyes and registrant is not None and same_person(reviewer, registrant):
        return f"four-eyes rule: {reviewer!r} registered it ({registrant!r})"
    return None


def judge(rules: ApprovalRules | None, record: dict[str, Any], subject: Subject | None) -> str | None:
    """Why a recorded approval does not count now (None: it counts).

    An approval that names its artifact is judged by ``rules`` (the policy in force), against ``subject`` when
    known (else the registrant it recorded); one recorded before approvals named their artifact is judged by the
    policy in force at its own log position.
    """
    if record.get("artifact_sha256") is None:
        rules = rules_from(record.get("policy"))
    elif subject is not None and record["artifact_sha256"] != subject.artifact_sha256:
        return "it names other artifact bytes than the version's"
    registrant = subject.registrant if subject is not None else record.get("registrant")
    return decision_refusal(rules, str(record.get("reviewer", "")), registrant)


def _records(state: ModelState, version: int, to: str) -> list[dict[str, Any]]:
    return [r for r in state.approved_by.get(version, []) if r.get("stage") == to]


def needs_approval(
    rules: ApprovalRules | None, state: ModelState, version: int, to: str, subject: Subject | None = None
) -> bool:
    """Whether moving ``version`` to ``to`` still needs an approval under ``rules``: none recorded counts."""
    if rules is None or to not in rules.stages or exemption_applies(rules, state, to):
        return False
    return not any(judge(rules, r, subject) is None for r in _records(state, version, to))


def check_promotion(
    rules: ApprovalRules | None, state: ModelState, version: int, to: str, subject: Subject | None = None
) -> None:
    """Refuse moving ``version`` to ``to`` when the policy protects ``to`` and no recorded approval counts.

    Raises:
        ApprovalRequired: no recorded approval for this version and stage counts under the policy in force.

    """
    if not needs_approval(rules, state, version, to, subject):
        return
    name = state.name
    void = [f"by {r.get('reviewer')!r}: {judge(rules, r, subject)}" for r in _records(state, version, to)]
    raise ApprovalRequired(
        f"{name} v{version} needs a recorded approval to enter {to} (policy of {name})"
        + (f"; the approvals recorded do not count under the policy in force ({'; '.join(void)})" if void else "")
        + "; record one (pmr approve / a reviewer in the UI) or use the logged break-glass override"
    )


def check_reviewer(rules: ApprovalRules | None, name: str, version: int, reviewer: str, registrant: str) -> None:
    """Refuse a decision the model's policy does not allow (names compared under the identity rule).

    Raises:
        ApprovalRefused: the reviewer is not allowed, or registered the version while four-eyes is on.

    """
    if rules is None:
        return
    if rules.reviewers is not None and not listed(reviewer, rules.reviewers):
        raise ApprovalRefused(f"{reviewer!r} is not an allowed reviewer of {name} (policy of {name})")
    if rules.four_eyes and same_person(reviewer, registrant):
        raise ApprovalRefused(
            f"four-eyes rule: {reviewer!r} registered {name} v{version} (as {registrant!r}) and cannot approve it"
        )


def loosening(old: ApprovalRules | None, new: ApprovalRules, *, exemption_spent: bool = False) -> list[str]:
    """How ``new`` lets through what ``old`` did not (empty: ``new`` only tightens, or nothing was set)."""
    if old is None:
        return []
    why = []
    dropped = sorted(set(old.stages) - set(new.stages))
    if dropped:
        why.append(f"{', '.join(dropped)} would no longer need an approval")
    if old.reviewers is not None:
        added = [r for r in new.reviewers if not listed(r, old.reviewers)] if new.reviewers is not None else []
        if new.reviewers is None:
            why.append("anyone could approve")
        elif added:
            why.append(f"new reviewers {', '.join(repr(r) for r in added)}")
    if old.four_eyes and not new.four_eyes:
        why.append("four-eyes off")
    if new.first_version_exempt and not old.first_version_exempt and not exemption_spent:
        why.append("the first production version exempt")
    unprotected = sorted(old.protected() - new.protected())
    if unprotected:
        why.append(f"alias {', '.join(repr(a) for a in unprotected)} no longer protected")
    return why
