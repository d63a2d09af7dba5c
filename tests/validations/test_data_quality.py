"""Data-quality gate on the real breast cancer data, clean and deliberately corrupted."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from prefect_model_registry.validations import (
    EmptyDataError,
    MissingColumnsError,
    SuiteError,
    load_suite,
    suite_path,
    validate_dataframe,
)
from prefect_model_registry.validations.data_quality import SUITES_DIR

SUITE = suite_path("breast_cancer")
NOT_NULL = "expect_column_values_to_not_be_null({})"
BETWEEN = "expect_column_values_to_be_between({})"
COLUMN_SET = "expect_table_columns_to_match_set"


def _failed(report) -> set[str]:
    return {c.name for c in report.failed_checks}


def test_bundled_suite_loads_every_expectation_in_the_file():
    spec = yaml.safe_load(SUITE.read_text())
    suite = load_suite(SUITE)
    assert len(suite.expectations) == len(spec["expectations"]) >= 20
    assert suite.name == "breast_cancer"
    assert SUITE.parent == SUITES_DIR and SUITE.name == "breast_cancer.yaml"


def test_clean_breast_cancer_passes_its_suite(bc_frame):
    report = validate_dataframe(bc_frame, "breast_cancer")
    n_expectations = len(yaml.safe_load(SUITE.read_text())["expectations"])
    assert report.passed, report.to_markdown()
    assert report.gate == "data_quality"
    assert len(report.checks) == n_expectations
    assert report.failed_checks == ()
    assert report.summary["dataset"] == "breast_cancer"
    assert report.summary["evaluated"] == n_expectations and report.summary["failed"] == 0
    assert report.summary["rows"] == 569
    # checks come back in suite order
    assert report.checks[0].name == COLUMN_SET
    assert report.checks[1].name == "expect_table_row_count_to_be_between"


def _nulls(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[[5, 50, 500], "mean radius"] = np.nan
    return df


def _out_of_range(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[[7, 70], "mean area"] = [-1.0, 1e6]
    return df


def _drop_column(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["worst texture"])


def _shift(df: pd.DataFrame) -> pd.DataFrame:
    # A unit error: texture recorded at 10x scale.
    df["mean texture"] = df["mean texture"] * 10
    return df


def _bad_labels(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[[1, 2, 3], "target"] = [2, 3, -1]
    return df


@pytest.mark.parametrize(
    ("corrupt", "expected_failed", "observed_part", "samples"),
    [
        (_nulls, {NOT_NULL.format("mean radius")}, "3 of 569 null", ("row 5", "row 50", "row 500")),
        (_out_of_range, {BETWEEN.format("mean area")}, "2 of 569 unexpected", (-1.0, 1e6)),
        (
            _drop_column,
            {COLUMN_SET, NOT_NULL.format("worst texture"), BETWEEN.format("worst texture")},
            "missing: [worst texture]",
            ("worst texture",),
        ),
        (_shift, {BETWEEN.format("mean texture")}, "unexpected", None),
        (
            _bad_labels,
            {"expect_column_values_to_be_in_set(target)"},
            "3 of 569 unexpected",
            (2, 3, -1),
        ),
    ],
    ids=["nulls", "out_of_range", "dropped_column", "shifted_scale", "labels_outside_set"],
)
def test_corrupted_copy_fails_with_the_right_check(
    bc_frame: pd.DataFrame,
    corrupt: Callable[[pd.DataFrame], pd.DataFrame],
    expected_failed: set[str],
    observed_part: str,
    samples: tuple | None,
):
    report = validate_dataframe(corrupt(bc_frame), "breast_cancer")
    assert not report.passed
    assert _failed(report) == expected_failed, report.to_markdown()
    first = report.failed_checks[0]
    assert observed_part in first.observed
    if samples is not None:
        assert first.samples == samples
    md = report.to_markdown()
    for name in expected_failed:
        assert f"| {name} | ❌ FAIL |" in md


def test_dropped_column_per_column_checks_say_why(bc_frame):
    report = validate_dataframe(bc_frame.drop(columns=["worst texture"]), "breast_cancer")
    check = report.check(NOT_NULL.format("worst texture"))
    assert not check.passed
    assert check.observed == "column 'worst texture' is missing from the dataset"  # not GX's words


def test_shifted_label_balance_fails_mean_check(bc_frame):
    # Keep only malignant cases (target 0): valid labels, but an implausible class balance.
    report = validate_dataframe(bc_frame[bc_frame["target"] == 0], "breast_cancer")
    assert _failed(report) == {"expect_column_mean_to_be_between(target)"}
    assert report.check("expect_column_mean_to_be_between(target)").observed == "0"


def test_suite_can_be_given_as_path_or_loaded_suite(bc_frame):
    by_path = validate_dataframe(bc_frame, str(SUITE), dataset="bc")
    loaded = load_suite(SUITE)
    by_obj = validate_dataframe(_nulls(bc_frame.copy()), loaded)
    assert by_path.passed and by_path.summary["dataset"] == "bc"
    assert not by_obj.passed and _failed(by_obj) == {NOT_NULL.format("mean radius")}
    # the loaded suite is not consumed or altered by a run
    assert len(loaded.expectations) == len(by_path.checks)
    assert validate_dataframe(bc_frame, loaded).passed


def test_concurrent_validations_each_see_their_own_dataframe(bc_frame):
    suite = load_suite(SUITE)
    frames = [bc_frame, _nulls(bc_frame.copy()), bc_frame.copy(), _bad_labels(bc_frame.copy())]
    with ThreadPoolExecutor(max_workers=4) as pool:
        reports = list(pool.map(lambda df: validate_dataframe(df, suite), frames))
    assert [r.passed for r in reports] == [True, False, True, False]
    assert _failed(reports[1]) == {NOT_NULL.format("mean radius")}
    assert _failed(reports[3]) == {"expect_column_values_to_be_in_set(target)"}


def test_empty_dataframe_is_a_typed_error(bc_frame):
    with pytest.raises(EmptyDataError, match="empty"):
        validate_dataframe(bc_frame.iloc[0:0], "breast_cancer")


def test_non_dataframe_is_rejected():
    with pytest.raises(TypeError, match="DataFrame"):
        validate_dataframe([[1, 2]], "breast_cancer")  # type: ignore[arg-type]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def test_misspelt_expectation_type_fails_loading(tmp_path):
    path = _write(
        tmp_path,
        """
expectations:
  - type: expect_column_values_to_not_be_null
    kwargs: {column: a}
  - type: expect_column_valeus_to_be_between
    kwargs: {column: a, min_value: 0}
""",
    )
    with pytest.raises(SuiteError, match=r"#2: unknown expectation type 'expect_column_valeus_to_be_between'"):
        load_suite(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "expectations:\n  - type: expect_column_values_to_be_between\n    kwargs: {colum: a, min_value: 0}\n",
            "colum",
        ),
        (
            "expectations:\n  - type: expect_column_values_to_be_between\n    kwargs: {column: a}\n",
            "malformed",
        ),
        ("expectations:\n  - type: expect_column_values_to_not_be_null\n    kwarg: {column: a}\n", "kwarg"),
        ("expectations:\n  - expect_column_values_to_not_be_null\n", "mapping with a 'type'"),
        ("expectations: []\n", "non-empty"),
        ("- just a list\n", "mapping"),
        ("expectations:\n  - type: [unclosed\n", "not valid YAML"),
        ("expectation:\n  - type: expect_column_to_exist\n    kwargs: {column: a}\n", "unknown top-level"),
    ],
    ids=[
        "unknown_kwarg",
        "missing_bounds",
        "unknown_key",
        "not_a_mapping",
        "empty",
        "list",
        "bad_yaml",
        "typo_key",
    ],
)
def test_malformed_suite_files_raise_suite_error(tmp_path, body, message):
    with pytest.raises(SuiteError, match=message):
        load_suite(_write(tmp_path, body))


def test_missing_suite_is_a_suite_error(bc_frame):
    with pytest.raises(SuiteError, match="cannot read suite file"):
        validate_dataframe(bc_frame, "no_such_dataset")
    with pytest.raises(SuiteError, match="invalid dataset name"):
        suite_path("../etc")


def test_json_suite_is_accepted(tmp_path, bc_frame):
    path = tmp_path / "s.json"
    path.write_text('{"name": "j", "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "x"}}]}')
    report = validate_dataframe(bc_frame, path)
    assert not report.passed
    assert report.failed_checks[0].name == "expect_column_to_exist(x)"


def test_importing_validations_does_not_import_great_expectations():
    code = (
        "import sys; import prefect_model_registry.validations as validations; "
        "validations.GateReport; validations.check_thresholds; "
        "assert 'great_expectations' not in sys.modules, 'GX imported eagerly'"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_missing_columns_can_raise_instead_of_report(bc_frame):
    frame = bc_frame.drop(columns=["worst texture", "target"])
    with pytest.raises(MissingColumnsError) as err:
        validate_dataframe(frame, "breast_cancer", missing_columns="raise")
    assert err.value.columns == ("worst texture", "target")  # suite order
    assert str(err.value) == (
        "the DataFrame validated with suite 'breast_cancer' is missing 2 column(s): 'worst texture', 'target'"
    )
    assert validate_dataframe(bc_frame, "breast_cancer", missing_columns="raise").passed


def test_suite_file_is_reported_relative_to_the_repo(bc_frame):
    report = validate_dataframe(bc_frame, "breast_cancer")
    assert report.summary["suite_file"] == "validations/suites/breast_cancer.yaml"
