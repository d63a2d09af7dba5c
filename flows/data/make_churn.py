"""Generate ``churn.csv``: a telecom churn table with numeric and categorical columns and gaps.

Deterministic (fixed seed): ``python flows/data/make_churn.py`` rewrites the same bytes. 3,000 customers; churn
depends on contract, tenure, charges, support calls and payment method, with noise, so a good model reaches a
ROC AUC around 0.8 and a constant one 0.5. About 5% of ``monthly_charges``, 3% of ``total_charges`` and 4% of
``payment_method`` are missing, as in real exports.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROWS = 3000
SEED = 20261122
OUT = Path(__file__).resolve().parent / "churn.csv"


def make_churn(rows: int = ROWS, seed: int = SEED) -> pd.DataFrame:
    """The churn table (``churned`` is the 0/1 target)."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], size=rows, p=[0.55, 0.25, 0.20])
    payment = rng.choice(
        ["electronic-check", "mailed-check", "bank-transfer", "credit-card"], size=rows, p=[0.35, 0.2, 0.22, 0.23]
    )
    internet = rng.choice(["fiber", "dsl", "none"], size=rows, p=[0.45, 0.35, 0.20])
    tenure = rng.integers(1, 73, size=rows)
    monthly = np.round(
        rng.normal(65, 20, size=rows) + np.where(internet == "fiber", 20, 0) - np.where(internet == "none", 35, 0), 2
    ).clip(18, 130)
    total = np.round(monthly * tenure * rng.uniform(0.9, 1.05, size=rows), 2)
    calls = rng.poisson(1.5, size=rows)
    senior = rng.choice([0, 1], size=rows, p=[0.84, 0.16])
    logit = (
        -1.2
        + np.select([contract == "month-to-month", contract == "one-year"], [1.4, 0.0], -1.3)
        - 0.035 * tenure
        + 0.018 * (monthly - 65)
        + 0.35 * calls
        + np.where(payment == "electronic-check", 0.6, 0.0)
        + 0.3 * senior
        + rng.normal(0, 0.6, size=rows)
    )
    churned = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(1, rows + 1)],
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "total_charges": total,
            "support_calls": calls,
            "senior_citizen": senior,
            "contract_type": contract,
            "payment_method": payment,
            "internet_service": internet,
            "churned": churned,
        }
    )
    for column, share in (("monthly_charges", 0.05), ("total_charges", 0.03), ("payment_method", 0.04)):
        frame[column] = frame[column].astype(object).where(rng.uniform(size=rows) >= share, None)
    return frame.drop(columns=["customer_id"])


def main(out: Path = OUT) -> None:
    """Write the table (CSV, Unix line ends) to ``out``."""
    make_churn().to_csv(out, index=False, lineterminator="\n")
    print(f"wrote {out} ({ROWS} rows)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
