"""``pmr policy`` and the reviewer commands ``pmr approve`` / ``pmr reject`` (registered on ``cli``).

The approval policy lives in each model's audit log (see ``policy``); the lifecycle enforces it for
every caller. A decision recorded here is the same ``approved``/``rejected`` event a reviewer makes in the Prefect
UI, with the ``--actor`` (or ``PMR_ACTOR``) as the reviewer.
"""

from __future__ import annotations

from typing import Annotated

import typer

from prefect_model_registry.registry import hooks
from prefect_model_registry.registry.cli.context import KEY_HELP, app, current, emit, op_key, open_registry
from prefect_model_registry.registry.core.identity import default_actor
from prefect_model_registry.registry.core.policy import ApprovalRules
from prefect_model_registry.registry.errors import InvalidMetadata

policy_app = typer.Typer(
    help="Show, set (tighten), propose or approve (loosen) a model's approval policy (kept in its audit log).",
    no_args_is_help=True,
)
app.add_typer(policy_app, name="policy")


@policy_app.command("show")
def show_policy(name: str) -> None:
    """Print the model's approval policy (none: no stage needs an approval)."""
    rules = open_registry().policy(name)
    if rules is None:
        emit(None, f"{name}: no approval policy (any caller may promote; set one with `pmr policy set`)")
        return
    text = (
        f"{name}: approval needed for {', '.join(rules.stages) or 'no stage'}; "
        f"reviewers {', '.join(rules.reviewers) if rules.reviewers is not None else 'anyone'}"
        + ("; four-eyes" if rules.four_eyes else "")
        + ("; the first production version is exempt (once)" if rules.first_version_exempt else "")
        + (f"; protected aliases {', '.join(sorted(rules.protected()))}" if rules.protected() else "")
    )
    emit(rules.model_dump(mode="json"), text)


def _rules(
    stage: list[str] | None,
    no_stages: bool,
    reviewer: list[str] | None,
    four_eyes: bool,
    first_version_exempt: bool,
    protect_alias: list[str] | None,
) -> ApprovalRules:
    if no_stages and stage:
        raise InvalidMetadata("--no-stages and --stage contradict each other")
    try:
        # Validated as untrusted input: a --stage other than staging/production is a ValueError, like any bad field.
        return ApprovalRules.model_validate(
            {
                "stages": [] if no_stages else (stage or ["production"]),
                "reviewers": reviewer or None,
                "four_eyes": four_eyes,
                "first_version_exempt": first_version_exempt,
                "protected_aliases": sorted(set(protect_alias or [])),
            }
        )
    except ValueError as exc:
        raise InvalidMetadata(f"bad policy: {str(exc).splitlines()[-1].strip()}") from None


_Stage = Annotated[
    list[str] | None, typer.Option("--stage", help="A stage that needs an approval (repeat; default production).")
]
_NoStages = Annotated[bool, typer.Option("--no-stages", help="No stage needs an approval.")]
_Reviewer = Annotated[list[str] | None, typer.Option("--reviewer", help="Who may approve (repeat).")]
_FourEyes = Annotated[bool, typer.Option("--four-eyes", help="The registrant may not approve.")]
_Exempt = Annotated[
    bool, typer.Option(help="A model's first production version needs no approval (spent once, for good).")
]
_Protect = Annotated[
    list[str] | None,
    typer.Option(
        "--protect-alias", help="An alias only a version fit for production may carry (repeat; champion is always)."
    ),
]


@policy_app.command("set")
def set_policy(
    name: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    stage: _Stage = None,
    no_stages: _NoStages = False,
    reviewer: _Reviewer = None,
    four_eyes: _FourEyes = False,
    first_version_exempt: _Exempt = True,
    protect_alias: _Protect = None,
    key: Annotated[str | None, typer.Option("--key", help=KEY_HELP)] = None,
) -> None:
    """Record NAME's approval policy when it tightens; every later promotion, by anyone, is checked against it.

    A change that loosens the policy in force is refused here: propose it (`pmr policy propose`) and have another
    person approve it (`pmr policy approve`).
    """
    rules = _rules(stage, no_stages, reviewer, four_eyes, first_version_exempt, protect_alias)
    event = open_registry().set_policy(
        name, rules, actor=current().actor, reason=reason, operation_key=op_key(key, "policy")
    )
    if event is None:
        emit(None, f"{name}: policy unchanged")
    else:
        emit(event.model_dump(mode="json"), str(event))


@policy_app.command("propose")
def propose_policy(
    name: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    stage: _Stage = None,
    no_stages: _NoStages = False,
    reviewer: _Reviewer = None,
    four_eyes: _FourEyes = False,
    first_version_exempt: _Exempt = True,
    protect_alias: _Protect = None,
    key: Annotated[str | None, typer.Option("--key", help=KEY_HELP)] = None,
) -> None:
    """Propose NAME's approval policy (a loosening): it waits in `pmr pending` for another person's approval."""
    rules = _rules(stage, no_stages, reviewer, four_eyes, first_version_exempt, protect_alias)
    event = open_registry().propose_policy(
        name, rules, actor=current().actor, reason=reason, operation_key=op_key(key, "policy-proposal")
    )
    if event is None:
        emit(None, f"{name}: that is the policy in force already")
    else:
        emit(event.model_dump(mode="json"), str(event))


@policy_app.command("approve")
def approve_policy(
    name: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    proposal: Annotated[int | None, typer.Option(help="The proposal's number (`pmr pending` shows it).")] = None,
    key: Annotated[str | None, typer.Option("--key", help=KEY_HELP)] = None,
) -> None:
    """Approve NAME's pending policy proposal, as another person than its proposer: it takes effect now."""
    event = open_registry().approve_policy(
        name, proposal, actor=current().actor, reason=reason, operation_key=op_key(key, "policy-approval")
    )
    emit(event.model_dump(mode="json"), str(event))


def _decide(name: str, version: int, approved: bool, comment: str, stage: str, key: str | None) -> None:
    reviewer = current().actor or default_actor()
    # A run waiting for this decision gets it (so it goes on, with the same rules as the UI form); otherwise
    # the decision is recorded here, for a version no run waits on (then `pmr promote` it).
    routed = hooks.route_decision(name, version, approved, reviewer, comment, stage)
    if routed is not None:
        emit({"resumed": True, "outcome": routed}, routed)
        return
    event = open_registry().record_decision(
        name,
        version,
        approved=approved,
        reviewer=reviewer,
        comment=comment,
        target_stage=stage,
        operation_key=op_key(key, "decision"),
    )
    emit(event.model_dump(mode="json"), str(event))


@app.command()
def approve(
    name: str,
    version: int,
    comment: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "",
    stage: Annotated[str, typer.Option(help="The stage the approval is for.")] = "production",
    key: Annotated[str | None, typer.Option("--key", help=KEY_HELP)] = None,
) -> None:
    """Approve VERSION for a stage, as the reviewer given by --actor / PMR_ACTOR (then `pmr promote` it)."""
    _decide(name, version, True, comment, stage, key)


@app.command()
def reject(
    name: str,
    version: int,
    comment: Annotated[str, typer.Option(help="Why (required; kept in the audit log).")],
    stage: Annotated[str, typer.Option(help="The stage a waiting run asks the decision for.")] = "production",
    key: Annotated[str | None, typer.Option("--key", help=KEY_HELP)] = None,
) -> None:
    """Reject VERSION: it can no longer be promoted."""
    _decide(name, version, False, comment, stage, key)
