"""GateReport: round trips, strict JSON, a readable Markdown table, combine, error messages."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from prefect_model_registry.validations import CheckResult, GateReport, MissingColumnsError, combine, validate_dataframe


def _report() -> GateReport:
    return GateReport(
        gate="data_quality",
        passed=False,
        checks=(
            CheckResult("expect_table_row_count_to_be_between", True, "row count in [100, inf]", "569"),
            CheckResult(
                "expect_column_values_to_be_in_set(target)",
                False,
                "values in {0, 1}",
                "3 of 569 unexpected (0.53%)",
                samples=(2, 3, -1),
                details={"unexpected_index_sample": [1, 2, 3]},
            ),
            CheckResult("score | ratio", False, "<= 0.3", "NaN (not finite)", details={"value": float("nan")}),
        ),
        summary={"dataset": "breast_cancer", "evaluated": 3, "failed": 2, "nested": {"a": 1}},
    )


def test_failed_checks_and_lookup():
    r = _report()
    assert [c.name for c in r.failed_checks] == ["expect_column_values_to_be_in_set(target)", "score | ratio"]
    assert r.check("score | ratio").observed == "NaN (not finite)"
    with pytest.raises(KeyError):
        r.check("nope")


def test_dict_round_trip():
    r = _report()
    d = r.to_dict()
    back = GateReport.from_dict(d)
    assert back.to_dict() == d
    assert back.checks[1].samples == (2, 3, -1) and isinstance(back.checks[1].samples, tuple)
    assert back.gate == r.gate and back.passed is False and back.summary == r.summary


def test_json_is_strict_and_round_trips():
    r = _report()
    text = r.to_json()

    def reject(token):
        raise AssertionError(f"non-standard JSON token {token}")

    parsed = json.loads(text, parse_constant=reject)
    assert parsed["checks"][2]["details"]["value"] == "NaN"
    back = GateReport.from_dict(parsed)
    assert [c.name for c in back.checks] == [c.name for c in r.checks]
    assert back.checks[1].samples == (2, 3, -1)


def test_json_handles_numpy_and_inf():
    r = GateReport(
        gate="thresholds",
        passed=True,
        checks=(CheckResult("x", True, "e", "o", samples=(np.int64(3), np.float64(np.inf)), details={"v": np.nan}),),
        summary={"n": np.int64(5), "values": np.array([1.5, -np.inf]).tolist()},
    )
    parsed = json.loads(r.to_json())
    assert parsed["checks"][0]["samples"] == [3, "Infinity"]
    assert parsed["checks"][0]["details"]["v"] == "NaN"
    assert parsed["summary"] == {"n": 5, "values": [1.5, "-Infinity"]}


def test_markdown_is_a_readable_table_with_failures_first():
    md = _report().to_markdown()
    lines = md.splitlines()
    assert lines[0] == "### Data quality gate: ❌ FAILED"
    assert "**2 of 3 checks failed**" in md
    assert "**dataset**: breast_cancer" in md and "nested" not in md  # nested dicts stay in JSON
    header = lines.index("| Check | Result | Expected | Observed | Samples |")
    assert lines[header + 1] == "|---|---|---|---|---|"
    rows = lines[header + 2 :]
    assert rows == [
        "| expect_column_values_to_be_in_set(target) | ❌ FAIL | values in {0, 1} "
        "| 3 of 569 unexpected (0.53%) | 2, 3, -1 |",
        "| score \\| ratio | ❌ FAIL | \\<= 0.3 | NaN (not finite) |  |",
        "| expect_table_row_count_to_be_between | ✅ pass | row count in \\[100, inf\\] | 569 |  |",
    ]
    # every row has the same number of cells as the header (escaped pipes do not split cells)
    for row in rows:
        assert row.replace("\\|", "").count("|") == 6


def test_markdown_passed_heading_and_long_cells():
    long = "x" * 500
    md = GateReport("drift", True, (CheckResult("c", True, long, "line1\nline2"),)).to_markdown()
    assert md.startswith("### Drift gate: ✅ PASSED")
    row = md.splitlines()[-1]
    assert "line1 line2" in row and "…" in row and len(row) < 300


def test_markdown_of_a_real_failed_validation(bc_frame):
    bc_frame.loc[[10, 20], "mean radius"] = np.nan
    md = validate_dataframe(bc_frame, "breast_cancer").to_markdown()
    table = md.splitlines()[md.splitlines().index("| Check | Result | Expected | Observed | Samples |") + 2 :]
    assert table[0] == (
        "| expect_column_values_to_not_be_null(mean radius) | ❌ FAIL | no nulls | 2 of 569 null (0.35%) "
        "| row 10, row 20 |"
    )
    assert all("✅ pass" in row for row in table[1:])
    assert "| expect_column_values_to_be_between(mean radius) | ✅ pass | values in \\[3.4, 43\\] |" in md


def test_combine():
    ok = GateReport("drift", True, ())
    assert combine([ok, ok])
    assert not combine([ok, _report()])
    assert not combine([])  # no gate ran: never a pass by accident
    assert combine(iter([ok]))


def test_missing_columns_error_message_is_readable():
    err = MissingColumnsError(["a b", "c"], where="the batch DataFrame")
    assert str(err) == "the batch DataFrame is missing 2 column(s): 'a b', 'c'"
    assert isinstance(err, KeyError)


def test_reports_pickle_for_task_results():
    r = _report()
    back = pickle.loads(pickle.dumps(r))
    assert back.to_json() == r.to_json() and back.failed_checks[0].samples == (2, 3, -1)
