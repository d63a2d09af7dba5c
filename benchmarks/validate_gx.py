"""Benchmark: validate a 1,000,000-row, 10-column DataFrame with a 20-expectation suite.

Compares ``validations.validate_dataframe`` (suite read from a YAML file, strict loading, fresh context,
report conversion) with the same suite run through plain Great Expectations code, and prints both times
and the ratio. A second, traced pass compares peak Python/numpy allocations to show that the wrapper makes
no copy of the DataFrame (a copy would add about the frame's size to the peak).

Usage: ``python benchmarks/validate_gx.py [--rows N] [--repeat K]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prefect_model_registry.validations import validate_dataframe

FLOATS = [f"f{i}" for i in range(7)]


def make_frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    data: dict[str, Any] = {c: rng.normal(10.0, 2.0, rows) for c in FLOATS}
    data["label"] = rng.integers(0, 2, rows)
    data["cat"] = pd.Series(rng.choice(["red", "green", "blue"], rows), dtype="str")
    data["id"] = np.arange(rows)
    return pd.DataFrame(data)


def suite_spec(df: pd.DataFrame) -> dict[str, Any]:
    exps: list[dict[str, Any]] = [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": list(df.columns)}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1000}},
    ]
    for c in FLOATS[:6]:
        exps.append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": c}})
        exps.append(
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": c, "min_value": -20, "max_value": 40},
            }
        )
    exps += [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "label", "value_set": [0, 1]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "cat"}},
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "cat", "value_set": ["red", "green", "blue"]},
        },
        {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "cat", "type_": "str"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {
            "type": "expect_column_mean_to_be_between",
            "kwargs": {"column": "f0", "min_value": 9.5, "max_value": 10.5},
        },
    ]
    assert len(exps) == 20
    return {"name": "bench", "expectations": exps}


def gx_direct(df: pd.DataFrame, spec: dict[str, Any]) -> bool:
    """The same validation written with plain GX, as its docs show it."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    suite = gx.ExpectationSuite(**spec)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_def = ctx.data_sources.add_pandas("s").add_dataframe_asset("a").add_batch_definition_whole_dataframe("b")
    result = batch_def.get_batch(batch_parameters={"dataframe": df}).validate(suite, result_format="SUMMARY")
    result.to_json_dict()
    return bool(result.success)


def ours(df: pd.DataFrame, path: Path) -> bool:
    report = validate_dataframe(df, path)
    report.to_json()
    return report.passed


def timed_pairs(fns: list[Any], repeat: int) -> list[list[float]]:
    """Time the functions alternately, so load from other processes hits both sides alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, bucket in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            ok = fn()
            bucket.append(time.perf_counter() - t0)
            assert ok, "the benchmark data should pass its suite"
    return times


def peak_mb(fn: Any) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    df = make_frame(args.rows)
    spec = suite_spec(df)
    frame_mb = df.memory_usage(deep=True).sum() / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))

        t0 = time.perf_counter()
        import great_expectations  # noqa: F401

        print(f"great_expectations import: {time.perf_counter() - t0:.2f} s (paid once per process)")
        # warm-up both paths (first-run caches, lazy imports inside GX)
        gx_direct(df, spec)
        ours(df, path)

        t_gx, t_ours = timed_pairs([lambda: gx_direct(df, spec), lambda: ours(df, path)], args.repeat)
        m_gx, m_ours = statistics.median(t_gx), statistics.median(t_ours)
        ratios = [o / g for o, g in zip(t_ours, t_gx, strict=True)]
        shape = f"{len(df):,} rows x {len(df.columns)} columns ({frame_mb:.0f} MB)"
        print(f"data: {shape}, suite: 20 expectations")
        print(f"GX direct      : median {m_gx:.3f} s  (min {min(t_gx):.3f}, {args.repeat} runs)")
        print(f"ours           : median {m_ours:.3f} s  (min {min(t_ours):.3f}, {args.repeat} runs)")
        paired = statistics.median(ratios)
        print(f"ratio ours/GX  : {m_ours / m_gx:.3f} (of medians), {paired:.3f} (median of paired runs)")

        p_gx = peak_mb(lambda: gx_direct(df, spec))
        p_ours = peak_mb(lambda: ours(df, path))
        print(f"peak traced allocations: GX direct {p_gx:.0f} MB, ours {p_ours:.0f} MB", end=" ")
        print(f"(the frame is {frame_mb:.0f} MB: a copy would add that much)")


if __name__ == "__main__":
    main()
