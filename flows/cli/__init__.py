"""The ``pmr`` console script: the registry commands, plus commands that drive Prefect flows.

The registry commands live in ``cli`` (no Prefect import). Commands added here import Prefect
only when they run, so ``pmr models`` stays fast.
"""

from __future__ import annotations

import prefect_model_registry.flows.cli.scoring  # noqa: F401  (registers `pmr explain-prediction`)
from prefect_model_registry.flows.cli import init, reviews
from prefect_model_registry.flows.cli.ci import app as ci_app
from prefect_model_registry.flows.cli.suite import app as suite_app
from prefect_model_registry.flows.errors import ConfigError, DatasetError, EstimatorError, PipelineError
from prefect_model_registry.registry.cli import app, main
from prefect_model_registry.registry.cli.context import EXIT_FAILED, EXIT_USAGE, register_errors
from prefect_model_registry.registry.hooks import add_decision_router
from prefect_model_registry.validations.errors import ValidationsError

app.add_typer(ci_app, name="ci")
# `pmr approve`/`reject` decide on the run that waits for the version, when one does (registers `pmr pending` too).
add_decision_router(reviews.route_decision)
app.add_typer(suite_app, name="suite")
# `pmr init DIR`: a team's starter project (config, suite, thresholds, prefect.yaml, worker policy).
app.command("init")(init.init)
# Every project error is one red line (--traceback: the whole trace): bad input exits 2, a refusal or failure 1.
register_errors(
    (ConfigError, EXIT_USAGE),
    (DatasetError, EXIT_USAGE),
    (EstimatorError, EXIT_USAGE),
    (ValidationsError, EXIT_USAGE),
    (PipelineError, EXIT_FAILED),
)

__all__ = ["app", "main"]
