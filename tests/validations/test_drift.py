"""Drift gate on real data: random halves pass, shifted or reshaped batches fail by column."""

from __future__ import annotations

import pytest

from prefect_model_registry.validations import EmptyDataError, MissingColumnsError, drift_report

KL = "expect_column_kl_divergence_to_be_less_than({})"
MEAN = "expect_column_mean_to_be_between({})"


@pytest.fixture
def halves(bc_frame):
    reference = bc_frame.sample(frac=0.5, random_state=1)
    return reference, bc_frame.drop(reference.index)


def test_random_half_does_not_drift(halves):
    reference, batch = halves
    report = drift_report(reference, batch)
    assert report.passed, report.to_markdown()
    assert report.gate == "drift"
    # 30 continuous features x (KL + mean) + the categorical target (KL only)
    assert len(report.checks) == 61
    assert report.summary["drifted_columns"] == []
    assert report.summary["reference_rows"] == len(reference) and report.summary["batch_rows"] == len(batch)


def test_mean_shift_is_flagged_on_that_column_only(halves):
    reference, batch = halves
    batch = batch.copy()
    batch["mean radius"] += reference["mean radius"].std()
    report = drift_report(reference, batch)
    assert not report.passed
    assert {c.name for c in report.failed_checks} == {KL.format("mean radius"), MEAN.format("mean radius")}
    assert report.summary["drifted_columns"] == ["mean radius"]
    kl = report.check(KL.format("mean radius"))
    assert float(kl.observed) > 0.2 and kl.expected == "KL divergence < 0.2 vs reference"


def test_spread_change_with_same_mean_is_caught_by_kl(halves):
    reference, batch = halves
    batch = batch.copy()
    col = batch["worst area"]
    batch["worst area"] = col.mean() + (col - col.mean()) * 3
    report = drift_report(reference, batch, columns=["worst area", "mean texture"])
    assert {c.name for c in report.failed_checks} == {KL.format("worst area")}
    assert report.check(MEAN.format("worst area")).passed


def test_unseen_label_gives_infinite_divergence(halves):
    reference, batch = halves
    batch = batch.copy()
    batch.loc[batch.index[:5], "target"] = 2
    report = drift_report(reference, batch, columns=["target"])
    check = report.check(KL.format("target"))
    assert not check.passed and check.observed.startswith("inf")
    assert report.summary["drifted_columns"] == ["target"]


def test_label_balance_shift_is_flagged(halves):
    reference, batch = halves
    report = drift_report(reference, batch[batch["target"] == 1], columns=["target"])
    assert not report.passed
    assert float(report.check(KL.format("target")).observed) > 0.2


def test_high_cardinality_text_column_is_skipped_and_said_so(halves):
    reference, batch = halves
    reference = reference.assign(patient_id=[f"p{i}" for i in range(len(reference))])
    batch = batch.assign(patient_id=[f"q{i}" for i in range(len(batch))])
    report = drift_report(reference, batch, columns=["patient_id", "mean radius"])
    assert report.summary["skipped_columns"] == "patient_id"
    assert all("patient_id" not in c.name for c in report.checks)
    assert "skipped_columns" in report.to_markdown()


def test_missing_columns_raise_a_readable_typed_error(halves):
    reference, batch = halves
    with pytest.raises(MissingColumnsError) as err:
        drift_report(reference, batch.drop(columns=["mean radius"]), columns=["mean radius", "target"])
    assert str(err.value) == "the batch DataFrame is missing 1 column(s): 'mean radius'"
    assert err.value.columns == ("mean radius",)
    with pytest.raises(MissingColumnsError, match="reference"):
        drift_report(reference, batch, columns=["nope"])


def test_empty_inputs_raise(halves):
    reference, batch = halves
    with pytest.raises(EmptyDataError, match="batch"):
        drift_report(reference, batch.iloc[:0])
    with pytest.raises(EmptyDataError, match="reference"):
        drift_report(reference.iloc[:0], batch)
