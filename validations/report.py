"""One report type for every gate, with Markdown and JSON renderers.

A :class:`GateReport` is what every gate returns (data quality, drift, thresholds, champion/challenger).
It is plain data: frozen dataclasses holding strings, bools and JSON-safe values, so the registry can store
``report.to_json()`` and the flows can publish ``report.to_markdown()`` as a Prefect artifact.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prefect_model_registry.registry.core.display import markdown

#: Max number of unexpected samples kept per check.
MAX_SAMPLES = 5
#: Cells longer than this are truncated in Markdown so the table stays readable.
MAX_CELL_CHARS = 160

_GATE_TITLES = {
    "data_quality": "Data quality",
    "drift": "Drift",
    "thresholds": "Metric thresholds",
    "champion_challenger": "Champion / challenger",
}


def jsonable(value: Any) -> Any:
    """Convert ``value`` to plain JSON-compatible Python (numpy scalars, tuples, sets, timestamps...).

    Non-finite floats are kept as floats here; :meth:`GateReport.to_json` turns them into strings.

    Args:
        value: Any value coming from GX, numpy, pandas or scikit-learn.

    Returns:
        A structure of dict/list/str/int/float/bool/None.

    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    # numpy / pandas scalars without importing them: they expose .item().
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    if value != value:  # pandas NA/NaT-like objects that are not floats
        return None
    return str(value)


def _json_safe(value: Any) -> Any:
    """Like :func:`jsonable` but also renders NaN/inf as strings so ``json.dumps`` stays strict."""
    value = jsonable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def format_value(value: Any, digits: int = 4) -> str:
    """Render a number or value compactly for humans (``0.9712``, ``1.2e-05``, ``NaN``).

    Args:
        value: The value to render.
        digits: Significant digits for floats.

    Returns:
        A short string.

    """
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v, digits) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check inside a gate.

    Attributes:
        name: Check identifier, e.g. ``"expect_column_values_to_not_be_null(mean radius)"`` or
            ``"accuracy >= 0.9"``.
        passed: Whether the check passed.
        expected: Human-readable expectation.
        observed: Human-readable observed value.
        samples: A few unexpected values (at most :data:`MAX_SAMPLES`), JSON-safe.
        details: JSON-safe extras (raw numbers, GX result excerpt...).

    """

    name: str
    passed: bool
    expected: str
    observed: str
    samples: tuple = ()
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict (non-finite floats kept as floats)."""
        return {
            "name": self.name,
            "passed": bool(self.passed),
            "expected": self.expected,
            "observed": self.observed,
            "samples": jsonable(list(self.samples)),
            "details": jsonable(dict(self.details)),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckResult:
        """Rebuild a check from :meth:`to_dict` output."""
        return cls(
            name=str(d["name"]),
            passed=bool(d["passed"]),
            expected=str(d.get("expected", "")),
            observed=str(d.get("observed", "")),
            samples=tuple(d.get("samples") or ()),
            details=dict(d.get("details") or {}),
        )


@dataclass(frozen=True)
class GateReport:
    """Result of one gate: overall verdict plus every check.

    Attributes:
        gate: ``"data_quality"``, ``"drift"``, ``"thresholds"`` or ``"champion_challenger"``.
        passed: Overall verdict.
        checks: Every check evaluated, in evaluation order.
        summary: JSON-safe summary, e.g. ``{"evaluated": 66, "failed": 1, "dataset": "breast_cancer"}``.

    """

    gate: str
    passed: bool
    checks: tuple[CheckResult, ...]
    summary: dict = field(default_factory=dict)

    @property
    def failed_checks(self) -> tuple[CheckResult, ...]:
        """The checks that did not pass, in evaluation order."""
        return tuple(c for c in self.checks if not c.passed)

    def failed_summary(self, limit: int = 5) -> str:
        """Name the first ``limit`` failed checks and count the rest: ``"a, b, c and +2 more"``.

        Args:
            limit: How many failed checks to name (at least 1).

        Returns:
            One line for a log or an error message; ``""`` when no check failed.

        """
        failed = self.failed_checks
        named = ", ".join(c.name for c in failed[: max(limit, 1)])
        rest = len(failed) - max(limit, 1)
        return f"{named} and +{rest} more" if rest > 0 else named

    def check(self, name: str) -> CheckResult:
        """Return the check called ``name``.

        Raises:
            KeyError: No check has this name.

        """
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict; :meth:`from_dict` round-trips it."""
        return {
            "gate": self.gate,
            "passed": bool(self.passed),
            "checks": [c.to_dict() for c in self.checks],
            "summary": jsonable(dict(self.summary)),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GateReport:
        """Rebuild a report from :meth:`to_dict` (or parsed :meth:`to_json`) output."""
        return cls(
            gate=str(d["gate"]),
            passed=bool(d["passed"]),
            checks=tuple(CheckResult.from_dict(c) for c in d.get("checks", ())),
            summary=dict(d.get("summary") or {}),
        )

    def to_json(self, indent: int | None = 2) -> str:
        """Serialise to strict JSON; NaN and inf become the strings ``"NaN"``/``"Infinity"``."""
        return json.dumps(_json_safe(self.to_dict()), indent=indent, allow_nan=False, ensure_ascii=False)

    def to_markdown(self) -> str:
        """Render a heading, a one-line summary and a table with failed checks first.

        Returns:
            Markdown text, suitable for a Prefect Markdown artifact or an approval form.

        """
        title = _GATE_TITLES.get(self.gate) or markdown(self.gate)
        verdict = "✅ PASSED" if self.passed else "❌ FAILED"
        n_failed = len(self.failed_checks)
        lines = [f"### {title} gate: {verdict}", ""]
        lines.append(f"**{n_failed} of {len(self.checks)} checks failed**")
        # Nested summaries (metric tables) stay in JSON; flat values and short lists go in the header.
        scalars = {
            k: (", ".join(map(format_value, v)) or "none") if isinstance(v, (list, tuple)) else v
            for k, v in self.summary.items()
            if not isinstance(v, dict)
            and not (isinstance(v, (list, tuple)) and any(isinstance(x, (dict, list)) for x in v))
        }
        if scalars:
            lines.append("")
            lines.append(" · ".join(f"**{_cell(k)}**: {_cell(format_value(v))}" for k, v in scalars.items()))
        lines += ["", "| Check | Result | Expected | Observed | Samples |", "|---|---|---|---|---|"]
        ordered = [c for c in self.checks if not c.passed] + [c for c in self.checks if c.passed]
        for c in ordered:
            mark = "✅ pass" if c.passed else "❌ FAIL"
            samples = ", ".join(format_value(s) for s in c.samples[:MAX_SAMPLES])
            row = [c.name, mark, c.expected, c.observed, samples]
            lines.append("| " + " | ".join(_cell(x) for x in row) + " |")
        return "\n".join(lines) + "\n"


def _cell(text: Any) -> str:
    """Make ``text`` safe inside one Markdown table cell: shown as typed (the data's values are anyone's text)."""
    s = " ".join(str(text).split())  # newlines would break the row
    if len(s) > MAX_CELL_CHARS:
        s = s[: MAX_CELL_CHARS - 1] + "…"
    return markdown(s)


def combine(reports: Iterable[GateReport]) -> bool:
    """Return True when every report passed.

    An empty iterable returns False: a release gate that ran no gate at all must not pass by accident.

    Args:
        reports: Gate reports to combine.

    """
    reports = list(reports)
    return bool(reports) and all(r.passed for r in reports)
