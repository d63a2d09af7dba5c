"""A data-quality report on data that lacks columns: every failed check counted, the missing column in words."""

from __future__ import annotations

import pandas as pd

from prefect_model_registry.validations import data_quality
from tests.flows.conftest import BATCH1


def test_missing_columns_are_named_in_words_and_every_failure_is_counted() -> None:
    frame = pd.read_csv(BATCH1).drop(columns=["target", "worst radius"])
    report = data_quality.validate_dataframe(frame, "breast_cancer", dataset="s3://b/data/latest.csv")

    assert len(report.failed_checks) == 8
    assert report.failed_summary().endswith(" and +3 more")  # five named, the other three counted
    typed = report.check("expect_column_values_to_be_of_type(target)")  # GX: "list index out of range"
    assert not typed.passed and typed.observed == "column 'target' is missing from the dataset"
    pair = report.check("expect_column_pair_values_a_to_be_greater_than_b(worst radius, mean radius)")
    assert pair.observed == "column 'worst radius' is missing from the dataset"
    text = report.to_markdown()
    assert "list index out of range" not in text and "BatchData" not in text
    assert report.summary["dataset"] == "s3://b/data/latest.csv"
