"""Internal Great Expectations plumbing: strict suite building, one-shot runs, result conversion.

Great Expectations is imported lazily (it costs seconds) by every function here, never at module import.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prefect_model_registry.validations.errors import EmptyDataError, SuiteError
from prefect_model_registry.validations.report import MAX_SAMPLES, CheckResult, format_value, jsonable

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd

_ALLOWED_KEYS = {"type", "kwargs", "meta", "notes", "description", "severity"}
# Names of the GX objects; any fixed string works since the context is private to one call.
_SOURCE, _ASSET, _BATCH = "validations_source", "validations_asset", "validations_batch"


def build_expectation(spec: Any, *, index: int, source: str) -> Any:
    """Build one GX expectation from a ``{"type": ..., "kwargs": {...}}`` mapping, strictly.

    Raises:
        SuiteError: Not a mapping, unknown keys, unknown expectation type or invalid kwargs.

    """
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    where = f"{source}: expectation #{index + 1}"
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise SuiteError(f"{where} must be a mapping with a 'type' key, got {spec!r}")
    extra = set(spec) - _ALLOWED_KEYS
    if extra:
        raise SuiteError(f"{where} ({spec['type']}) has unknown key(s) {sorted(extra)}")
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise SuiteError(f"{where} ({spec['type']}): 'kwargs' must be a mapping, got {kwargs!r}")
    try:
        config = ExpectationConfiguration(**{**spec, "kwargs": dict(kwargs)})
        return config.to_domain_obj()
    except ExpectationNotFoundError as exc:
        raise SuiteError(f"{where}: unknown expectation type {spec['type']!r}") from exc
    except Exception as exc:  # pydantic ValidationError, TypeError...: all mean a malformed expectation
        raise SuiteError(f"{where} ({spec['type']}) is malformed: {_short_error(exc)}") from exc


def _short_error(exc: Exception) -> str:
    """Condense a pydantic error (which lists every union branch) to one message per field."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    seen: dict[str, str] = {}
    for err in errors():
        loc = ".".join(str(x) for x in err.get("loc", ())) or "?"
        seen.setdefault(loc, err.get("msg", ""))
    return "; ".join(f"{loc}: {msg}" for loc, msg in seen.items())


def build_suite(name: str, specs: Sequence[Any], *, source: str) -> gx.ExpectationSuite:
    """Build an ExpectationSuite from expectation mappings; raise instead of dropping bad ones.

    Raises:
        SuiteError: Any expectation is unknown or malformed.

    """
    import great_expectations as gx

    expectations = [build_expectation(s, index=i, source=source) for i, s in enumerate(specs)]
    suite = gx.ExpectationSuite(name=name, expectations=expectations)
    # GX logs and drops expectations it cannot add; never run a silently shrunk suite.
    if len(suite.expectations) != len(specs):
        raise SuiteError(f"{source}: GX kept {len(suite.expectations)} of {len(specs)} expectations")
    return suite


def run_suite(df: pd.DataFrame, suite: gx.ExpectationSuite) -> Any:
    """Validate ``df`` against ``suite`` in a fresh ephemeral context, SUMMARY result format.

    The DataFrame is handed to GX as is (no copy). A context is never shared: GX contexts are not
    thread-safe and a shared one has been seen validating another thread's DataFrame.

    Raises:
        EmptyDataError: ``df`` has no rows.

    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if len(df.index) == 0:
        raise EmptyDataError(f"cannot validate an empty DataFrame against suite {suite.name!r}")
    # Each ephemeral context logs "Created temporary directory ... for ephemeral docs site" at INFO: noise.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    # Run a private copy whose ids put results back in suite order (GX may reorder them); the caller's
    # suite is left untouched, so one loaded suite can be shared by threads.
    copies = [copy.copy(e) for e in suite.expectations]
    for exp in copies:
        exp.id = None  # GX refuses expectations that already belong to a suite
    private = gx.ExpectationSuite(name=suite.name, expectations=copies)
    for i, exp in enumerate(private.expectations):
        exp.id = f"check-{i}"
    batch_def = (
        ctx.data_sources.add_pandas(_SOURCE).add_dataframe_asset(_ASSET).add_batch_definition_whole_dataframe(_BATCH)
    )
    return batch_def.get_batch(batch_parameters={"dataframe": df}).validate(private, result_format="SUMMARY")


def result_to_checks(result: Any, columns: Collection[Any] | None = None) -> list[CheckResult]:
    """Convert a GX SUMMARY validation result into checks, in suite order.

    Args:
        result: GX's validation result.
        columns: The validated data's columns. A check on a column not among them fails with
            "column 'x' is missing from the dataset" instead of whatever GX made of it (it reports
            ``list index out of range`` for some expectations).
    """

    def order(r: Any) -> int:
        rid = r.expectation_config.id or ""
        return int(rid.rsplit("-", 1)[-1]) if "-" in rid else 0

    return [_to_check(r.to_json_dict(), columns) for r in sorted(result.results, key=order)]


def check_name(etype: str, kwargs: Mapping[str, Any]) -> str:
    """Name a check after its expectation type and column(s): ``expect_x(mean radius)``."""
    if "column" in kwargs:
        return f"{etype}({kwargs['column']})"
    if "column_A" in kwargs:
        return f"{etype}({kwargs['column_A']}, {kwargs['column_B']})"
    if "column_list" in kwargs:
        return f"{etype}({', '.join(map(str, kwargs['column_list']))})"
    return etype


def _missing_columns(kwargs: Mapping[str, Any], columns: Collection[Any] | None) -> list[str]:
    """The columns a per-column or column-pair check names that the data lacks (table checks say it themselves)."""
    if columns is None:
        return []
    named = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    return [str(c) for c in named if c not in columns]


def _to_check(r: Mapping[str, Any], columns: Collection[Any] | None = None) -> CheckResult:
    cfg = r.get("expectation_config") or {}
    etype = cfg.get("type", "?")
    kwargs = {k: v for k, v in (cfg.get("kwargs") or {}).items() if k != "batch_id"}
    res = r.get("result") or {}
    error = _exception_message(r.get("exception_info"))
    samples: list[Any] = []
    missing = _missing_columns(kwargs, columns)
    if missing:
        # GX's own words for this are its internals ("list index out of range", "BatchData"): say what happened.
        words = " and ".join(f"column {c!r}" for c in missing)
        observed, error = f"{words} {'is' if len(missing) == 1 else 'are'} missing from the dataset", None
    elif error:
        observed = f"error: {error.removeprefix('Error: ')}"
    elif "unexpected_count" in res:
        observed, samples = _observed_unexpected(etype, res)
    elif "observed_value" in res:
        observed, samples = _observed_value(etype, res)
    else:
        observed = "no result"
    keep = ("element_count", "unexpected_count", "unexpected_percent", "missing_count", "observed_value")
    details = {
        "expectation_type": etype,
        "kwargs": jsonable(kwargs),
        "result": jsonable({k: res[k] for k in keep if k in res}),
    }
    if res.get("partial_unexpected_index_list"):
        details["unexpected_index_sample"] = jsonable(res["partial_unexpected_index_list"][:MAX_SAMPLES])
    if error:
        details["error"] = error
    if missing:
        details["missing_columns"] = missing
    return CheckResult(
        name=check_name(etype, kwargs),
        passed=bool(r.get("success")) and not missing,
        expected=describe_expectation(etype, kwargs),
        observed=observed,
        samples=tuple(jsonable(samples[:MAX_SAMPLES])),
        details=details,
    )


def _exception_message(info: Any) -> str | None:
    """GX reports errors either flat or keyed by metric id; return the first message."""
    if not isinstance(info, Mapping):
        return None
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    for value in info.values():
        if isinstance(value, Mapping) and value.get("exception_message"):
            return str(value["exception_message"])
    return None


def _observed_unexpected(etype: str, res: Mapping[str, Any]) -> tuple[str, list[Any]]:
    n, bad = res.get("element_count", 0), res.get("unexpected_count", 0)
    pct = res.get("unexpected_percent") or 0.0
    if etype == "expect_column_values_to_not_be_null":
        # The unexpected values are all nulls; row positions say more.
        rows = [f"row {i}" for i in res.get("partial_unexpected_index_list") or []]
        return f"{bad} of {n} null ({pct:.2f}%)", rows
    text = f"{bad} of {n} unexpected ({pct:.2f}%)"
    if res.get("missing_count"):
        text += f"; {res['missing_count']} null (not counted)"
    return text, list(res.get("partial_unexpected_list") or [])


def _observed_value(etype: str, res: Mapping[str, Any]) -> tuple[str, list[Any]]:
    value = res.get("observed_value")
    details = res.get("details") or {}
    if etype in ("expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list"):
        mismatched = details.get("mismatched")
        if not mismatched:
            return f"{len(value or [])} columns, as expected", []
        if isinstance(mismatched, Mapping):
            parts = [f"{k}: {format_value(list(v))}" for k, v in mismatched.items() if v]
            missing = list(mismatched.get("missing") or [])
            return "; ".join(parts), missing
        return f"mismatched: {format_value(mismatched)}", []
    if etype == "expect_column_kl_divergence_to_be_less_than" and value is None:
        return "inf (values outside the reference support)", []
    if isinstance(value, Mapping) and "quantiles" in value:
        pairs = zip(value.get("quantiles", []), value.get("values", []), strict=False)
        return ", ".join(f"q{q:g}={format_value(v)}" for q, v in pairs), []
    return format_value(value), []


def describe_expectation(etype: str, kw: Mapping[str, Any]) -> str:
    """Human-readable description of an expectation's kwargs (column names left out)."""
    what = _subject(etype)
    if etype.endswith("_to_be_between"):
        lo, hi = kw.get("min_value"), kw.get("max_value")
        lb = "(" if kw.get("strict_min") else "["
        rb = ")" if kw.get("strict_max") else "]"
        text = f"{what} in {lb}{format_value(lo) if lo is not None else '-inf'}, "
        text += f"{format_value(hi) if hi is not None else 'inf'}{rb}"
    elif etype == "expect_column_values_to_not_be_null":
        text = "no nulls"
    elif etype.endswith("_in_set") or etype.endswith("_equal_set") or etype.endswith("_contain_set"):
        verb = "not in" if "_not_" in etype else "in"
        text = f"{what} {verb} {{{', '.join(format_value(v) for v in kw.get('value_set') or [])}}}"
    elif etype == "expect_table_columns_to_match_set":
        exact = kw.get("exact_match", True)
        text = f"{'exactly' if exact else 'at least'} {len(kw.get('column_set') or [])} named columns"
    elif etype == "expect_column_pair_values_a_to_be_greater_than_b":
        text = f"{kw.get('column_A')} {'≥' if kw.get('or_equal') else '>'} {kw.get('column_B')}"
    elif etype == "expect_column_to_exist":
        text = "column exists"
    elif etype == "expect_column_values_to_be_of_type":
        text = f"type {kw.get('type_')}"
    elif etype == "expect_column_kl_divergence_to_be_less_than":
        text = f"KL divergence < {format_value(kw.get('threshold'))} vs reference"
    elif etype == "expect_column_quantile_values_to_be_between":
        qr = kw.get("quantile_ranges") or {}
        pairs = zip(qr.get("quantiles", []), qr.get("value_ranges", []), strict=False)
        text = ", ".join(f"q{q:g} in [{format_value(a)}, {format_value(b)}]" for q, (a, b) in pairs)
    elif etype.endswith("_to_equal") and "value" in kw:
        text = f"{what} = {format_value(kw['value'])}"
    else:
        skip = {"column", "column_A", "column_B", "column_list", "mostly", "result_format", "meta"}
        text = ", ".join(f"{k}={format_value(v)}" for k, v in kw.items() if k not in skip) or etype
    if kw.get("mostly") is not None and kw.get("mostly") != 1:
        text += f" (mostly ≥ {format_value(kw['mostly'])})"
    return text


def _subject(etype: str) -> str:
    """``expect_column_mean_to_be_between`` -> ``mean``; ``expect_table_row_count_...`` -> ``row count``."""
    body = etype.removeprefix("expect_").removeprefix("column_").removeprefix("table_")
    return body.split("_to_", 1)[0].replace("_", " ")
