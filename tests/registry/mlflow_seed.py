"""Build a small MLflow model registry with MLflow's own client (run by the MLflow venv's Python, not ours).

Two models: ``churn`` (3 versions: Archived, Production, Staging; aliases ``champion`` and ``challenger``;
tags and descriptions) and ``fraud`` (2 versions, alias ``prod``), each version from a run with params and
metrics and a scikit-learn model logged with ``mlflow.sklearn``. Prints what it made as JSON.

Usage: python mlflow_seed.py TRACKING_URI [--extra | --fraud-only]   (``--extra`` adds churn v4 for a second
import; ``--fraud-only`` makes only ``fraud``)
"""

from __future__ import annotations

import json
import sys
import warnings

import mlflow
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

warnings.filterwarnings("ignore")


def _train(name: str, c: float, auc: float) -> str:
    X, y = load_iris(return_X_y=True)
    with mlflow.start_run() as run:
        mlflow.log_params({"C": c, "solver": "lbfgs"})
        mlflow.log_metrics({"roc_auc": auc, "accuracy": auc - 0.05})
        mlflow.set_tag("team", "growth")
        model = LogisticRegression(C=c, max_iter=300).fit(X, y)
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    return run.info.run_id


def main() -> None:
    mlflow.set_tracking_uri(sys.argv[1])
    client = MlflowClient()
    extra = "--extra" in sys.argv
    if extra:
        _train("churn", 4.0, 0.95)
        client.set_registered_model_alias("churn", "challenger", "4")
        print(json.dumps({"added": "churn/4"}))
        return
    mlflow.set_experiment("seed")
    for i, auc in enumerate([0.7, 0.75], start=1):
        _train("fraud", float(i) / 10, auc)
    client.transition_model_version_stage("fraud", "2", "Production")
    client.set_registered_model_alias("fraud", "prod", "2")
    if "--fraud-only" in sys.argv:
        print(json.dumps({"models": ["fraud"]}))
        return
    for i, auc in enumerate([0.81, 0.9, 0.93], start=1):
        _train("churn", float(i), auc)
    client.update_registered_model("churn", description="predicts churn within 90 days")
    client.set_registered_model_tag("churn", "domain", "retention")
    client.update_model_version("churn", "2", description="the Q3 model")
    client.set_model_version_tag("churn", "2", "validated_by", "dana")
    client.transition_model_version_stage("churn", "1", "Archived")
    client.transition_model_version_stage("churn", "2", "Production")
    client.transition_model_version_stage("churn", "3", "Staging")
    client.set_registered_model_alias("churn", "champion", "2")
    client.set_registered_model_alias("churn", "challenger", "3")
    print(json.dumps({"models": ["churn", "fraud"]}))


if __name__ == "__main__":
    main()
