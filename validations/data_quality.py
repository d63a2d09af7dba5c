"""Data-quality gate: Great Expectations suites kept as files in the repo, run on pandas DataFrames.

Suite files live in ``validations/suites/<dataset>.yaml`` (JSON is accepted too, YAML being a superset).
The format is GX's own suite layout, so a suite exported from GX can be dropped in as is::

    name: breast_cancer            # optional, defaults to the file stem
    meta: {owner: ml-team}         # optional, free-form
    expectations:                  # required, non-empty
      - type: expect_column_values_to_not_be_null
        kwargs: {column: mean radius}
      - type: expect_column_values_to_be_between
        kwargs: {column: mean radius, min_value: 5.0, max_value: 33.0}
        meta: {why: "physical range with a margin"}

Each expectation may only have the keys ``type``, ``kwargs``, ``meta``, ``notes``, ``description`` and
``severity``. Loading is strict: GX itself logs and drops an expectation whose type it does not know,
whereas :func:`load_suite` raises ``SuiteError`` naming the faulty entry.

Missing columns: a column the suite names but the DataFrame lacks is reported as failed checks, not
raised, so a dropped column shows up in the report like any other data problem. Suites should therefore
include ``expect_table_columns_to_match_set`` (it names the missing columns); every per-column expectation
on the absent column also fails with ``error: The column "x" ... does not exist``. Callers that prefer an
exception pass ``missing_columns="raise"`` and get ``MissingColumnsError``
naming every absent column before GX runs; the drift gate always raises it for absent columns.

Every call builds a fresh ephemeral GX context (contexts are not thread-safe) and keeps GX results in
SUMMARY form: counts, percentages and at most a few unexpected values per check.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from prefect_model_registry.validations._gx import build_suite, result_to_checks, run_suite
from prefect_model_registry.validations._paths import display_path
from prefect_model_registry.validations.errors import EmptyDataError, MissingColumnsError, SuiteError
from prefect_model_registry.validations.report import GateReport

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd

#: Directory holding the bundled suite files.
SUITES_DIR = Path(__file__).resolve().parent / "suites"
_TOP_LEVEL_KEYS = {"name", "meta", "notes", "expectations"}


def suite_path(dataset: str) -> Path:
    """Return the suite file of ``dataset``: ``validations/suites/<dataset>.yaml`` (or ``.json``).

    Args:
        dataset: Dataset name, e.g. ``"breast_cancer"``.

    Returns:
        The ``.yaml`` path, or the ``.json`` one when only that exists. The file may not exist.

    """
    if not dataset or Path(dataset).name != dataset:
        raise SuiteError(f"invalid dataset name {dataset!r}: expected a bare name like 'breast_cancer'")
    yaml_path = SUITES_DIR / f"{dataset}.yaml"
    json_path = SUITES_DIR / f"{dataset}.json"
    return json_path if not yaml_path.exists() and json_path.exists() else yaml_path


def read_suite_spec(path: str | Path) -> dict[str, Any]:
    """Read and structurally check a suite file without building GX objects (no GX import).

    Args:
        path: Suite file (YAML or JSON).

    Returns:
        The parsed mapping with a non-empty ``expectations`` list and a ``name``.

    Raises:
        SuiteError: Unreadable file, invalid YAML/JSON, or wrong structure.

    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"cannot read suite file {path}: {exc.strerror or exc}") from exc
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SuiteError(f"suite file {path} is not valid YAML/JSON: {exc}") from exc
    if not isinstance(spec, Mapping):
        raise SuiteError(f"suite file {path} must hold a mapping with an 'expectations' list")
    unknown = set(spec) - _TOP_LEVEL_KEYS
    if unknown:
        raise SuiteError(f"suite file {path} has unknown top-level key(s) {sorted(unknown)}")
    expectations = spec.get("expectations")
    if not isinstance(expectations, list) or not expectations:
        raise SuiteError(f"suite file {path} needs a non-empty 'expectations' list")
    return {**spec, "name": str(spec.get("name") or path.stem)}


def load_suite(path: str | Path) -> gx.ExpectationSuite:
    """Load a suite file into a GX ``ExpectationSuite``, failing loudly on any bad expectation.

    Args:
        path: Suite file (YAML or JSON).

    Returns:
        An ``ExpectationSuite`` holding exactly the expectations of the file.

    Raises:
        SuiteError: Unreadable file, invalid YAML, unknown expectation type or malformed kwargs.

    """
    spec = read_suite_spec(path)
    suite = build_suite(spec["name"], spec["expectations"], source=str(path))
    if spec.get("meta"):
        suite.meta.update(spec["meta"])
    return suite


def _resolve(suite: str | Path | gx.ExpectationSuite) -> tuple[gx.ExpectationSuite, str | None]:
    """Accept a suite object, a path, or a dataset name; return the suite and its file (if any)."""
    if not isinstance(suite, (str, Path)):
        return suite, None
    text = str(suite)
    is_path = isinstance(suite, Path) or "/" in text or text.endswith((".yaml", ".yml", ".json"))
    path = Path(suite) if is_path else suite_path(text)
    return load_suite(path), display_path(path)


def load_suite_ref(suite: str | Path) -> gx.ExpectationSuite:
    """Load a suite given as a file path or a bundled name (strictly: every expectation kept).

    Raises:
        SuiteError: missing, unreadable or invalid.

    """
    return _resolve(suite)[0]


def suite_columns(suite: gx.ExpectationSuite) -> list[str]:
    """Return the columns a suite names (per-column, column-pair and column-set kwargs), in suite order.

    Args:
        suite: A loaded suite.

    Returns:
        Unique column names.

    """
    names: dict[str, None] = {}
    for exp in suite.expectations:
        kwargs = exp.configuration.kwargs
        for key in ("column", "column_A", "column_B"):
            if key in kwargs:
                names[str(kwargs[key])] = None
        for key in ("column_list", "column_set"):
            for col in kwargs.get(key) or ():
                names[str(col)] = None
    return list(names)


def validate_dataframe(
    df: pd.DataFrame,
    suite: str | Path | gx.ExpectationSuite,
    *,
    dataset: str | None = None,
    missing_columns: Literal["report", "raise"] = "report",
) -> GateReport:
    """Validate a DataFrame with a data-quality suite and return the ``data_quality`` gate report.

    Args:
        df: The data to validate; not copied.
        suite: A suite file path, a dataset name (resolved with :func:`suite_path`) or a loaded suite.
        dataset: Dataset name recorded in the summary; defaults to the suite name.
        missing_columns: ``"report"`` (default) turns columns named by the suite but absent from ``df``
            into failed checks; ``"raise"`` raises :class:`MissingColumnsError` before running GX.

    Returns:
        A :class:`GateReport` with one check per expectation, in suite order.

    Raises:
        TypeError: ``df`` is not a pandas DataFrame.
        EmptyDataError: ``df`` has no rows.
        SuiteError: The suite cannot be found or loaded.
        MissingColumnsError: ``missing_columns="raise"`` and ``df`` lacks columns named by the suite.

    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"validate_dataframe expects a pandas DataFrame, got {type(df).__name__}")
    if len(df.index) == 0:
        raise EmptyDataError(f"cannot validate an empty DataFrame (dataset {dataset or suite!s})")
    if missing_columns not in ("report", "raise"):
        raise ValueError(f"missing_columns must be 'report' or 'raise', got {missing_columns!r}")
    gx_suite, source = _resolve(suite)
    if missing_columns == "raise":
        absent = [c for c in suite_columns(gx_suite) if c not in df.columns]
        if absent:
            raise MissingColumnsError(absent, where=f"the DataFrame validated with suite {gx_suite.name!r}")
    result = run_suite(df, gx_suite)
    checks = tuple(result_to_checks(result, columns=frozenset(df.columns)))
    failed = sum(not c.passed for c in checks)
    summary: dict[str, Any] = {
        "dataset": dataset or gx_suite.name,
        "suite": gx_suite.name,
        "rows": len(df.index),
        "columns": len(df.columns),
        "evaluated": len(checks),
        "failed": failed,
    }
    if source:
        summary["suite_file"] = source
    return GateReport(gate="data_quality", passed=bool(result.success) and failed == 0, checks=checks, summary=summary)
