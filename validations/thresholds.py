"""Metric-threshold gate: absolute floors/ceilings and rules relative to the production model.

Configs live next to the suites, in ``validations/thresholds/<dataset>.yaml``::

    absolute:                     # the candidate alone
      accuracy: {min: 0.9}        # accuracy >= 0.9
      log_loss: {max: 0.3}        # log_loss <= 0.3
      r2: {min: 0.5, max: 1.0}    # both bounds allowed
    relative:                     # against the current production model (the champion)
      roc_auc: {max_drop: 0.005}      # roc_auc >= champion - 0.005
      log_loss: {max_increase: 0.02}  # log_loss <= champion + 0.02

Bounds are inclusive. ``max_drop``/``max_increase`` may be negative to demand an improvement.
Metric names must be in :data:`prefect_model_registry.validations.metrics.KNOWN_METRICS`.

Failure semantics: a metric that is missing, NaN or infinite fails its rule. Relative rules pass (marked
"skipped") when there is no champion yet; when a champion exists but its own value is missing or not
finite, the rule fails, since the comparison cannot be made (fail closed, a human can still approve).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prefect_model_registry.validations._paths import display_path
from prefect_model_registry.validations.errors import ThresholdConfigError
from prefect_model_registry.validations.metrics import check_metric_name
from prefect_model_registry.validations.report import CheckResult, GateReport, format_value

#: Directory holding the bundled threshold configs.
THRESHOLDS_DIR = Path(__file__).resolve().parent / "thresholds"


@dataclass(frozen=True)
class Bound:
    """Absolute inclusive bounds for one metric; ``None`` means unbounded."""

    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class RelativeRule:
    """Allowed change of one metric against the champion; ``None`` means no rule in that direction."""

    max_drop: float | None = None
    max_increase: float | None = None


@dataclass(frozen=True)
class ThresholdConfig:
    """Parsed threshold config.

    Attributes:
        absolute: Metric name to :class:`Bound`.
        relative: Metric name to :class:`RelativeRule`.
        source: Where the config came from (file path), for messages.

    """

    absolute: dict[str, Bound] = field(default_factory=dict)
    relative: dict[str, RelativeRule] = field(default_factory=dict)
    source: str = "<config>"

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<config>") -> ThresholdConfig:
        """Parse and check a config mapping (the YAML document).

        Raises:
            ThresholdConfigError: Wrong structure, non-numeric or inconsistent bounds, no rules.
            UnknownMetricError: A metric name is not known.

        """
        if not isinstance(data, Mapping):
            raise ThresholdConfigError(f"{source}: expected a mapping with 'absolute'/'relative' sections")
        unknown = set(data) - {"absolute", "relative", "meta"}
        if unknown:
            raise ThresholdConfigError(f"{source}: unknown top-level key(s) {sorted(unknown)}")
        absolute = {
            check_metric_name(m): Bound(**_rule(source, "absolute", m, r, ("min", "max")))
            for m, r in _section(source, data, "absolute").items()
        }
        for m, b in absolute.items():
            if b.min is not None and b.max is not None and b.min > b.max:
                raise ThresholdConfigError(f"{source}: absolute.{m} has min {b.min} > max {b.max}")
        relative = {
            check_metric_name(m): RelativeRule(**_rule(source, "relative", m, r, ("max_drop", "max_increase")))
            for m, r in _section(source, data, "relative").items()
        }
        if not absolute and not relative:
            raise ThresholdConfigError(f"{source}: no threshold rules (need 'absolute' and/or 'relative')")
        return cls(absolute=absolute, relative=relative, source=source)

    def to_dict(self) -> dict[str, Any]:
        """Return the config in file format (only the bounds that are set)."""

        def strip(d: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in d.items() if v is not None}

        return {
            "absolute": {m: strip(vars(b)) for m, b in self.absolute.items()},
            "relative": {m: strip(vars(r)) for m, r in self.relative.items()},
        }


def _section(source: str, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    section = data.get(key) or {}
    if not isinstance(section, Mapping):
        raise ThresholdConfigError(f"{source}: '{key}' must map metric names to rules, got {section!r}")
    return section


def _rule(source: str, section: str, metric: str, rule: Any, keys: tuple[str, ...]) -> dict[str, float]:
    where = f"{source}: {section}.{metric}"
    if not isinstance(rule, Mapping) or not rule:
        raise ThresholdConfigError(f"{where} must be a mapping with {' and/or '.join(keys)}, got {rule!r}")
    bad = set(rule) - set(keys)
    if bad:
        raise ThresholdConfigError(f"{where} has unknown key(s) {sorted(bad)}; allowed: {list(keys)}")
    out: dict[str, float] = {}
    for k, v in rule.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ThresholdConfigError(f"{where}.{k} must be a finite number, got {v!r}")
        out[k] = float(v)
    return out


def thresholds_path(dataset: str) -> Path:
    """Return ``validations/thresholds/<dataset>.yaml`` (the file may not exist).

    Raises:
        ThresholdConfigError: ``dataset`` is not a bare name.

    """
    if not dataset or Path(dataset).name != dataset:
        raise ThresholdConfigError(f"invalid dataset name {dataset!r}: expected a bare name like 'breast_cancer'")
    return THRESHOLDS_DIR / f"{dataset}.yaml"


def load_thresholds(path_or_dataset: str | Path) -> ThresholdConfig:
    """Load a threshold config from a file path or a dataset name.

    Args:
        path_or_dataset: A path (``Path``, or a string containing ``/`` or ending in ``.yaml``/``.yml``/
            ``.json``) or a dataset name resolved with :func:`thresholds_path`.

    Raises:
        ThresholdConfigError: File missing/unreadable, invalid YAML, or invalid rules.
        UnknownMetricError: A metric name is not known.

    """
    text = str(path_or_dataset)
    is_path = isinstance(path_or_dataset, Path) or "/" in text or text.endswith((".yaml", ".yml", ".json"))
    path = Path(path_or_dataset) if is_path else thresholds_path(text)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ThresholdConfigError(f"cannot read threshold config {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ThresholdConfigError(f"threshold config {path} does not parse: {exc}") from exc
    return ThresholdConfig.from_dict(data, source=display_path(path))


def _value(metrics: Mapping[str, float] | None, name: str) -> tuple[float | None, str | None]:
    """Return (value, problem); problem is set when the value is missing or not a finite number."""
    if metrics is None or name not in metrics or metrics[name] is None:
        return None, "missing"
    try:
        value = float(metrics[name])
    except (TypeError, ValueError):
        return None, f"not a number ({metrics[name]!r})"
    if not math.isfinite(value):
        return value, f"{format_value(value)} (not finite)"
    return value, None


def check_thresholds(
    metrics: Mapping[str, float],
    config: ThresholdConfig,
    *,
    champion_metrics: Mapping[str, float] | None = None,
) -> GateReport:
    """Check candidate metrics against absolute bounds and, when there is a champion, relative rules.

    Args:
        metrics: Candidate metrics, e.g. from :func:`prefect_model_registry.validations.metrics.evaluate`.
        config: Parsed thresholds (see :func:`load_thresholds`).
        champion_metrics: The production model's metrics on the same holdout, or None if there is none.

    Returns:
        A :class:`GateReport` (gate ``"thresholds"``), one check per bound or rule.

    """
    checks: list[CheckResult] = []
    for name, bound in config.absolute.items():
        value, problem = _value(metrics, name)
        for op, limit in ((">=", bound.min), ("<=", bound.max)):
            if limit is None:
                continue
            ok = problem is None and value is not None and (value >= limit if op == ">=" else value <= limit)
            checks.append(
                CheckResult(
                    name=f"{name} {op} {format_value(limit)}",
                    passed=bool(ok),
                    expected=f"{op} {format_value(limit)}",
                    observed=problem or format_value(value),
                    details={"metric": name, "rule": "absolute", "limit": limit, "value": value},
                )
            )
    for name, rule in config.relative.items():
        checks += _relative_checks(name, rule, metrics, champion_metrics)
    failed = sum(not c.passed for c in checks)
    summary = {
        "config": config.source,
        "evaluated": len(checks),
        "failed": failed,
        "champion": "present" if champion_metrics is not None else "none (relative rules skipped)",
    }
    return GateReport(gate="thresholds", passed=failed == 0, checks=tuple(checks), summary=summary)


def _relative_checks(
    name: str,
    rule: RelativeRule,
    metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None,
) -> list[CheckResult]:
    checks = []
    value, problem = _value(metrics, name)
    base, base_problem = _value(champion_metrics, name)
    for op, sign, allowed in ((">=", "-", rule.max_drop), ("<=", "+", rule.max_increase)):
        if allowed is None:
            continue
        label = f"{name} {op} champion {sign} {format_value(allowed)}"
        expected = label.removeprefix(f"{name} ")
        details: dict[str, Any] = {"metric": name, "rule": "relative", "allowed": allowed, "value": value}
        if champion_metrics is None:
            ok, observed = True, "skipped: no champion yet (first model)"
            details["skipped"] = True
        elif problem is not None:
            ok, observed = False, f"candidate {problem}"
        elif base_problem is not None:
            ok, observed = False, f"champion {base_problem}: cannot compare"
        else:
            assert value is not None and base is not None  # _value gives a number whenever it reports no problem
            limit = base - allowed if op == ">=" else base + allowed
            ok = value >= limit if op == ">=" else value <= limit
            observed = f"{format_value(value)} (champion {format_value(base)}, Δ {value - base:+.4g})"
            details.update(champion=base, delta=value - base, limit=limit)
            expected = f"{expected} (= {format_value(limit)})"
        checks.append(CheckResult(name=label, passed=bool(ok), expected=expected, observed=observed, details=details))
    return checks
