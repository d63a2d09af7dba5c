"""Stage changes: promote (with the approval the policy asks for), archive and roll back."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prefect_model_registry.registry.core.checks import (
    check_flag,
)
from prefect_model_registry.registry.core.drafts import Draft
from prefect_model_registry.registry.core.idempotency import op_fingerprint
from prefect_model_registry.registry.core.lifecycle import (
    approval_matters,
    plan_rollback,
    plan_stage_change,
)
from prefect_model_registry.registry.errors import (
    InvalidMetadata,
)
from prefect_model_registry.registry.events import EventType
from prefect_model_registry.registry.models import (
    Event,
    ModelState,
)
from prefect_model_registry.registry.names import check_alias, check_model_name, check_stage
from prefect_model_registry.registry.operations.base import (
    RegistryBase,
    check_break_glass_reason,
)


class Stages(RegistryBase):
    """Stage changes: promote (with the approval the policy asks for), archive and roll back."""

    def promote(
        self,
        name: str,
        version: int,
        to: str,
        *,
        actor: str | None = None,
        reason: str = "",
        run_id: str | None = None,
        operation_key: str | None = None,
        break_glass: bool = False,
        through_staging: bool = False,
        aliases: Iterable[str] = (),
    ) -> Event:
        """Move ``version`` to stage ``to`` in one atomic log append (archiving the old production one).

        With ``operation_key``, a retry after a crash at any point returns the event that landed.

        Args:
            name: model name.
            version: the version to move.
            to: target stage.
            actor: who promotes.
            reason: why (kept in the audit log).
            run_id: the flow run doing it, if any.
            operation_key: a retry with the same key returns the event that landed.
            break_glass: for incidents: promote without the approval the model's policy requires. The change is
                logged as a ``break_glass`` event with its reason (at least 3 visible characters); gates and
                rejections still block.
            through_staging: with ``to="production"``, a version not yet staged goes through staging in the same
                event (``via: staging``): one append, with every check of both steps (MLflow's one-call move).
            aliases: aliases that point at the version in the same event (``champion`` for a new production
                version): a protected alias moves with the promotion that covers it.

        Raises:
            InvalidTransition: the lifecycle does not allow the move.
            PromotionBlocked: the version's gates failed, or it was rejected.
            VersionNotFound: the model has no such version.
            ModelNotFound: no model of that name is registered.
            ApprovalRequired: the policy protects ``to`` and no recorded approval counts under the policy in force.

        """
        check_stage(to)
        check_flag(break_glass, "break_glass")
        check_flag(through_staging, "through_staging")
        op_key, actor = self._opening(operation_key, actor, reason=reason, run_id=run_id)
        if break_glass:
            check_break_glass_reason(reason)
        if isinstance(aliases, str):
            raise InvalidMetadata("aliases must be a list of alias names, not one string")
        moving = sorted({check_alias(a) for a in aliases})
        exists = self._version_exists(name, version)  # checked in the plan, before any write
        subject = self._subject(name, version)
        kind = EventType.BREAK_GLASS if break_glass else EventType.STAGE_CHANGED

        def plan(st: ModelState) -> Draft:
            exists(st)
            # Recorded approvals are judged on the state this event follows, against the version's own manifest.
            facts = subject() if moving or approval_matters(st, to, through_staging=through_staging) else None
            data = plan_stage_change(
                st,
                version,
                to,
                break_glass=break_glass,
                through_staging=through_staging,
                subject=facts,
                aliases=moving,
            )
            return Draft(kind, version, actor, reason, run_id, data)

        return self._write_one(
            name,
            op_key,
            "promote",
            op_fingerprint(
                "promote",
                version=version,
                to=to,
                **({"break_glass": True} if break_glass else {}),
                **({"through_staging": True} if through_staging else {}),
                **({"aliases": moving} if moving else {}),
            ),
            plan,
        )

    def archive(self, name: str, version: int, **kwargs: Any) -> Event:
        """Archive a version (shorthand for ``promote(..., to="archived")``)."""
        return self.promote(name, version, "archived", **kwargs)

    def rollback(
        self,
        name: str,
        *,
        actor: str | None = None,
        reason: str = "",
        run_id: str | None = None,
        move_aliases: bool = False,
        operation_key: str | None = None,
        break_glass: bool = False,
    ) -> Event:
        """Put back the production version before the current one, archiving the current, atomically.

        Args:
            name: model name.
            actor: who rolls back.
            reason: why (kept in the audit log).
            run_id: the flow run doing it, if any.
            move_aliases: move the rolled-back version's aliases to the restored one, in the same event.
            operation_key: a retry with the same key returns the rollback that landed (never a second one).
            break_glass: for incidents: restore the version before even if it was rejected or failed a gate since
                (needs a reason of at least 3 visible characters; the event says BREAK-GLASS).

        Raises:
            NothingToRollBack: no earlier production version in the log.
            PromotionBlocked: the version before was rejected or failed a gate (without ``break_glass``).

        """
        check_model_name(name)
        check_flag(move_aliases, "move_aliases")
        check_flag(break_glass, "break_glass")
        op_key, actor = self._opening(operation_key, actor, reason=reason, run_id=run_id)
        if break_glass:
            check_break_glass_reason(reason)
        self._require_model(name)

        def plan(st: ModelState) -> Draft:
            data = plan_rollback(st, move_aliases=move_aliases, break_glass=break_glass)
            return Draft("rolled_back", data["to"], actor, reason, run_id, data)

        request = op_fingerprint(
            "rollback", move_aliases=move_aliases, **({"break_glass": True} if break_glass else {})
        )
        return self._write_one(name, op_key, "rollback", request, plan)
