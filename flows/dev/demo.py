"""``make demo``: a full retraining lifecycle on bundled data, with embedded defaults.

A local-directory registry (``.pmr/demo/registry``) and a Prefect server this script starts on 127.0.0.1 and
stops at the end. Steps: train and promote v1; retrain on a new batch to v2, which pauses for approval and is
approved through Prefect's resume API (this script acts as the reviewer); a corrupted batch stopped by the
data-quality gate with nothing registered; a rollback; then the registry and v2's lineage.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markdown import Markdown
from rich.rule import Rule

from prefect_model_registry.flows.dev.server import LocalPrefectServer

if TYPE_CHECKING:
    from prefect_model_registry.registry import Registry

ROOT = Path(".pmr/demo")
_HERE = Path(__file__).resolve().parents[1] / "data"
# Relative to the checkout when run from it (as make demo does), so the lineage shows no machine paths.
DATA = _HERE.relative_to(Path.cwd()) if _HERE.is_relative_to(Path.cwd()) else _HERE
MODEL = "breast-cancer"
REVIEWER = "demo-reviewer (acting for a person in the Prefect UI)"
console = Console(width=110)


def step(title: str) -> None:
    """Print a section heading."""
    console.print(Rule(f"[bold]{title}"))


def show_pmr(registry: str, args: list[str]) -> None:
    """Print a ``pmr`` command, then run it in this process (a non-zero exit stops the demo)."""
    from prefect_model_registry.flows.cli import main as pmr  # every pmr command, explain-prediction included

    console.print(f"$ pmr --registry {registry} {' '.join(args)}", style="dim")
    try:
        pmr(["--registry", registry, *args])
    except SystemExit as exc:
        if exc.code:
            raise


def corrupted_batch(path: Path) -> Path:
    """Write a copy of batch 2 with nulls, out-of-range values and labels outside {0, 1}."""
    import pandas as pd

    frame = pd.read_csv(DATA / "breast_cancer_batch2.csv")
    frame.loc[:30, "mean radius"] = None
    frame.loc[40:45, "mean area"] = -1.0
    frame.loc[50:52, "target"] = 7
    frame.to_csv(path, index=False)
    return path


def wait_until_paused(timeout: float = 180) -> Any:
    """The paused run of the retraining flow for MODEL."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            for run in client.read_flow_runs(flow_run_filter=paused):
                if (run.parameters.get("config") or {}).get("model_name") == MODEL:
                    return run
            time.sleep(0.5)
    raise TimeoutError("the retraining run did not pause for approval")


def run_lifecycle(registry: str) -> None:
    """The demo's steps, against the server whose settings are in the environment."""
    from prefect_model_registry.flows.cli.runs import quiet_expected_failures
    from prefect_model_registry.registry import Registry

    quiet_expected_failures()  # an expected gate failure is one line, not a Prefect traceback
    reg = Registry.open(registry)
    _first_version(registry)
    _reviewed_version(reg, registry)
    _corrupted_batch(reg, registry)
    _roll_back(registry)
    _score_and_trace(registry)
    _show_registry(registry)


def _first_version(registry: str) -> None:
    """Step 1: v1 from batch 1, straight to production (a first model needs no approval)."""
    from prefect_model_registry.flows.core.approval import ApprovalPolicy
    from prefect_model_registry.flows.core.config import RetrainConfig
    from prefect_model_registry.flows.pipeline import retrain

    step("1. Train v1 on batch 1 and promote it (first model: no approval needed)")
    out = retrain(
        RetrainConfig(
            model_name=MODEL,
            dataset_uri=str(DATA / "breast_cancer_batch1.csv"),
            registry=registry,
            actor="nightly-retrain",
            approval=ApprovalPolicy(required_for=[]),
        )
    )
    console.print(
        f"v{out['version']} is in {out['stage']}: {', '.join(f'{k}={v:.4f}' for k, v in out['metrics'].items())}"
    )


def _reviewed_version(reg: Registry, registry: str) -> None:
    """Step 2: v2 from batch 2, staged, paused for a reviewer, approved through Prefect's resume API."""
    from prefect.flow_runs import resume_flow_run

    from prefect_model_registry.flows.core.approval import ApprovalPolicy
    from prefect_model_registry.flows.core.config import RetrainConfig
    from prefect_model_registry.flows.core.evidence import champion_markdown, gate_summary
    from prefect_model_registry.flows.pipeline import retrain
    from prefect_model_registry.validations.report import GateReport

    step("2. Retrain on batch 2: v2 passes its gates, is staged, and waits for a reviewer")
    result: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: result.update(
            state=retrain(
                RetrainConfig(
                    model_name=MODEL,
                    dataset_uri=str(DATA / "breast_cancer_batch2.csv"),
                    registry=registry,
                    actor="nightly-retrain",
                    approval=ApprovalPolicy(poll_interval_seconds=1, timeout_seconds=600, four_eyes=True),
                ),
                return_state=True,
            )
        ),
        daemon=True,
    )
    worker.start()
    run = wait_until_paused()
    console.print(f"flow run [bold]{run.name}[/bold] is Paused; v2 is {reg.state(MODEL).stage_of(2)}. The evidence:")
    reports = {g: GateReport.from_dict(r) for g, r in reg.reports(MODEL, 2).items()}
    console.print(Markdown(champion_markdown(reports.get("champion_challenger")) + "\n\n" + gate_summary(reports)))
    console.print(f"Approving through Prefect's resume API as [bold]{REVIEWER}[/bold] …")
    resume_flow_run(
        run.id, run_input={"approve": True, "reviewer": REVIEWER, "comment": "beats v1 on the same holdout"}
    )
    worker.join(300)
    state = result["state"]
    console.print(f"run finished: {state.name}; production is now v{reg.state(MODEL).production}")


def _corrupted_batch(reg: Registry, registry: str) -> None:
    """Step 3: a corrupted batch stopped by the data-quality gate, nothing registered."""
    from prefect_model_registry.flows.core.approval import ApprovalPolicy
    from prefect_model_registry.flows.core.config import RetrainConfig
    from prefect_model_registry.flows.pipeline import retrain

    step("3. A corrupted batch: the data-quality gate stops the run, nothing is registered")
    latest = reg.latest_version(MODEL)
    bad = retrain(
        RetrainConfig(
            model_name=MODEL,
            dataset_uri=str(corrupted_batch(ROOT / "corrupted.csv")),
            registry=registry,
            approval=ApprovalPolicy(required_for=[]),
        ),
        return_state=True,
    )
    console.print(f"run finished: {bad.name}: {bad.message}")
    console.print(f"latest version still v{reg.latest_version(MODEL)} (was v{latest})")


def _roll_back(registry: str) -> None:
    """Step 4: roll back to v1 (the champion alias follows)."""
    from prefect_model_registry.flows.lifecycle import rollback_model

    step("4. Roll back: v1 returns to production, v2 is archived")
    back = rollback_model(
        model_name=MODEL, reason="demo: simulated incident on v2", registry=registry, actor="on-call engineer"
    )
    moved = back["aliases"]
    assert isinstance(moved, list)
    console.print(f"rolled back v{back['from']} -> v{back['to']}; moved aliases: {', '.join(moved) or '-'}")


def _score_and_trace(registry: str) -> None:
    """Step 5: score a batch, trace a row back to its version and restore its training data."""
    step("5. Score a batch with production, then trace a prediction back to its version and its training data")
    import pandas as pd

    from prefect_model_registry.flows.scoring import score_batch

    batch = ROOT / "to-score.csv"
    pd.read_csv(DATA / "breast_cancer_batch2.csv").drop(columns=["target"]).head(50).to_csv(batch, index=False)
    scored = score_batch(f"models:/{MODEL}@production", str(batch), str(ROOT / "scored.csv"), registry)
    console.print(f"scored {scored['rows']} rows with v{scored['version']} into {ROOT / 'scored.csv'}")
    restored = ROOT / "restored-training-data.csv"
    for args in (
        ["explain-prediction", str(ROOT / "scored.csv"), "--row", "0"],
        ["dataset", MODEL, str(scored["version"]), "-o", str(restored), "--force"],
    ):
        show_pmr(registry, args)
    same = restored.read_bytes() == (DATA / "breast_cancer_batch1.csv").read_bytes()
    console.print(f"restored training data identical to the file v{scored['version']} was trained on: {same}")


def _show_registry(registry: str) -> None:
    """Step 6: the registry as pmr shows it."""
    step("6. The registry, v2's lineage and the audit log (pmr)")
    for args in (["models"], ["versions", MODEL], ["lineage", MODEL, "2"], ["history", MODEL], ["verify"]):
        show_pmr(registry, args)


def main() -> None:
    """Run the demo end to end and stop everything it started."""
    if ROOT.exists():
        shutil.rmtree(ROOT)
    ROOT.mkdir(parents=True)
    registry = str(ROOT / "registry")
    started = time.monotonic()
    console.print(f"Starting a Prefect server on 127.0.0.1 (home {ROOT / 'prefect'}) …")
    with LocalPrefectServer(ROOT / "prefect") as server:
        os.environ.update(server.client_env())
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the demo narrates; the UI has the full logs
        console.print(f"Prefect API at {server.api_url}")
        run_lifecycle(registry)
        from prefect.logging.handlers import APILogHandler

        APILogHandler().flush()  # send the runs' last logs before the server goes away
    console.print(Rule())
    console.print(
        f"Done in {time.monotonic() - started:.0f}s. Explore: [bold]pmr --registry {registry} history {MODEL}[/bold]; "
        f"browse the runs: [bold]PREFECT_HOME={ROOT / 'prefect'} .venv/bin/prefect server start[/bold]"
    )


if __name__ == "__main__":
    main()
