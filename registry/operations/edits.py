"""Edits that are audit events: descriptions, tags, aliases and scoring runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prefect_model_registry.registry.core.checks import (
    check_count,
    check_op_key,
    check_report,
    check_tags,
    check_text,
)
from prefect_model_registry.registry.core.drafts import Draft
from prefect_model_registry.registry.core.idempotency import op_fingerprint
from prefect_model_registry.registry.core.identity import (
    resolve_actor,
)
from prefect_model_registry.registry.core.lifecycle import (
    check_alias_target,
    check_not_deleted,
    rules_of,
)
from prefect_model_registry.registry.errors import (
    AliasNotFound,
    InvalidMetadata,
)
from prefect_model_registry.registry.models import (
    Event,
    ModelState,
)
from prefect_model_registry.registry.names import check_alias, check_model_name
from prefect_model_registry.registry.operations.base import (
    RegistryBase,
)


class Edits(RegistryBase):
    """Edits that are audit events: descriptions, tags, aliases and scoring runs."""

    def describe(
        self,
        name: str,
        version: int | None,
        description: str,
        *,
        actor: str | None = None,
        operation_key: str | None = None,
    ) -> Event:
        """Set the description of a version (or of the model, ``version=None``) as an audit event."""
        check_model_name(name)
        op_key, actor = self._opening(operation_key, actor)
        check_text(description, "description")
        if version is None:
            self._require_model(name)
        else:
            self.get_version(name, version)
        request = op_fingerprint("describe", version=version, description=description)
        return self._write_one(
            name,
            op_key,
            "describe",
            request,
            lambda _st: Draft("described", version, actor, "", None, {"description": description}),
        )

    def tag(
        self,
        name: str,
        version: int,
        tags: Mapping[str, str] | None = None,
        *,
        remove: Iterable[str] = (),
        actor: str | None = None,
        operation_key: str | None = None,
    ) -> Event:
        """Set and/or remove tags of a version as one audit event (the manifest keeps its registered tags)."""
        check_model_name(name)
        op_key, actor = self._opening(operation_key, actor)
        setting = dict(tags or {})
        check_tags(setting)
        removing = sorted({check_text(k, "tag key", max_len=256) for k in remove})
        if not setting and not removing:
            raise InvalidMetadata("give tags to set or to remove")
        registered = self.get_version(name, version).tags
        data = {"set": setting, "removed": removing}

        def plan(st: ModelState) -> Draft:
            # The version's tags after this edit, as reads show them, stay within PMR_MAX_ENTRIES.
            current = {k: v for k, v in {**registered, **st.tags.get(version, {})}.items() if v is not None}
            after = (set(current) | set(setting)) - set(removing)
            check_count("a version's tags", after)
            return Draft("tagged", version, actor, "", None, data)

        return self._write_one(name, op_key, "tag", op_fingerprint("tag", version=version, **data), plan)

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str | None = None,
        reason: str = "",
        run_id: str | None = None,
        operation_key: str | None = None,
    ) -> Event | None:
        """Point ``alias`` at ``version`` (moving it from wherever it was). ``None`` when already there.

        Raises:
            PromotionBlocked: the alias is protected by the model's policy and the version was rejected or failed
                a gate.
            ApprovalRequired: the alias is protected and the version is not (and was not) in production and has no
                approval for production that counts (move it with the promotion instead: ``promote(aliases=...)``).

        """
        check_alias(alias)
        op_key, actor = self._opening(operation_key, actor, reason=reason, run_id=run_id)
        exists = self._version_exists(name, version)
        subject = self._subject(name, version)

        def plan(st: ModelState) -> Draft | None:
            exists(st)
            check_not_deleted(st, version)
            previous = st.aliases.get(alias)
            if previous == version:
                return None
            rules = rules_of(st)
            if rules is not None and alias in rules.protected():
                check_alias_target(st, alias, version, subject())
            return Draft("alias_set", version, actor, reason, run_id, {"alias": alias, "previous": previous})

        return self._write(name, op_key, "set_alias", op_fingerprint("set_alias", alias=alias, version=version), plan)

    def remove_alias(
        self,
        name: str,
        alias: str,
        *,
        actor: str | None = None,
        reason: str = "",
        run_id: str | None = None,
        operation_key: str | None = None,
    ) -> Event:
        """Remove ``alias``.

        Raises:
            AliasNotFound: no version carries it.

        """
        check_model_name(name)
        check_alias(alias)
        op_key, actor = self._opening(operation_key, actor, reason=reason, run_id=run_id)
        self._require_model(name)

        def plan(st: ModelState) -> Draft:
            if alias not in st.aliases:
                raise AliasNotFound(f"{name} has no alias {alias!r}")
            return Draft("alias_removed", st.aliases[alias], actor, reason, run_id, {"alias": alias})

        return self._write_one(name, op_key, "remove_alias", op_fingerprint("remove_alias", alias=alias), plan)

    def record_scoring(self, name: str, version: int, record: Mapping[str, Any], *, actor: str | None = None) -> Event:
        """Log that a scoring run used ``version`` (``record``: run id, input fingerprint, output, row count).

        The run id is the operation key: a retried scoring task logs its run once.

        Raises:
            InvalidMetadata: the record lacks a ``run`` or is not plain JSON.

        """
        check_model_name(name)
        if not isinstance(record, Mapping) or not isinstance(record.get("run"), str) or not record["run"]:
            raise InvalidMetadata("a scoring record needs its run id ('run')")
        check_report(dict(record), "scoring record")
        actor = resolve_actor(actor)
        self.get_version(name, version)
        op_key = check_op_key(f"scoring:{record['run']}")
        data = dict(record)
        return self._write_one(
            name,
            op_key,
            "record_scoring",
            op_fingerprint("record_scoring", version=version, run=record["run"]),
            lambda _st: Draft("scored", version, actor, f"{data.get('rows', '?')} rows", data["run"], data),
        )
