"""deployments/prefect.yaml without a server: entrypoints, parameters, schedule and trigger match the code."""

from __future__ import annotations

import importlib
import inspect
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = ROOT / "deployments" / "prefect.yaml"


@cache
def spec() -> dict[str, Any]:
    return yaml.safe_load(PREFECT_YAML.read_text())


def flow_of(entrypoint: str) -> Any:
    # A module entrypoint in the installed package: no path of any machine (or of this checkout) is recorded.
    assert entrypoint.startswith("prefect_model_registry.flows.") and ":" not in entrypoint, entrypoint
    module, _, name = entrypoint.rpartition(".")
    return getattr(importlib.import_module(module), name)


def deployed_names() -> set[str]:
    """``flow-name/deployment-name`` of every deployment in prefect.yaml."""
    return {f"{flow_of(d['entrypoint']).name}/{d['name']}" for d in spec()["deployments"]}


def by_name(name: str) -> dict[str, Any]:
    (found,) = [d for d in spec()["deployments"] if d["name"] == name]
    return found


def test_the_deployments_the_issue_asks_for() -> None:
    assert deployed_names() >= {
        "retrain-model/retrain-nightly",
        "retrain-model/retrain",
        "retrain-model/retrain-after-rollback",
        "promote-model/promote",
        "rollback-model/rollback",
        "decide-model/approve",
    }


@pytest.mark.parametrize("deployment", spec()["deployments"], ids=lambda d: d["name"])
def test_parameters_are_the_flows_and_validate(deployment: dict[str, Any]) -> None:
    flow = flow_of(deployment["entrypoint"])
    signature = inspect.signature(flow.fn)
    given = dict(deployment.get("parameters") or {})
    assert set(given) <= set(signature.parameters), set(given) - set(signature.parameters)
    for trigger in deployment.get("triggers", []):
        given |= trigger.get("parameters", {})
    required = {n for n, p in signature.parameters.items() if p.default is inspect.Parameter.empty}
    if deployment.get("schedules") or deployment.get("triggers"):
        # Runs nobody starts by hand must have every required parameter.
        assert required <= set(given), required - set(given)
    # Concrete values (not templates) must pass the flow's own validation.
    concrete = {k: v for k, v in given.items() if not (isinstance(v, str) and "{{" in v)}
    # An annotation is the type itself, or its name when the flow's module postpones annotations.
    kinds = {n: p.annotation for n, p in signature.parameters.items()}
    placeholders = {n: "x" if kinds[n] in (str, "str") else 1 for n in required}
    if "approve" in required:
        placeholders["approve"] = True
    flow.validate_parameters({**placeholders, **concrete})
    assert deployment["work_pool"]["name"] == "pmr-process"


def test_nightly_schedule() -> None:
    from prefect.client.schemas.schedules import CronSchedule

    (schedule,) = by_name("retrain-nightly")["schedules"]
    CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])  # validates the cron expression
    assert schedule["active"] is True


def test_the_trigger_matches_what_the_rollback_flow_emits(monkeypatch: pytest.MonkeyPatch) -> None:
    import jinja2
    from prefect.events import Event

    from prefect_model_registry.flows.core import publish

    captured: list[Event] = []
    monkeypatch.setattr(publish, "emit_event", lambda **kw: captured.append(Event(**kw)) or captured[-1], raising=True)
    publish.emit("rolled-back", "churn", 3, actor="ops", reason="bad")  # what rollback-model emits
    (event,) = captured

    (trigger,) = by_name("retrain-after-rollback")["triggers"]
    assert event.event in trigger["expect"]
    pattern = trigger["match"]["prefect.resource.id"]
    assert re.fullmatch(pattern.replace(".", r"\.").replace("*", ".*"), event.resource.id)
    # A run's config replaces the deployment's whole config: the trigger sends all of it, with the model's name.
    config = dict(trigger["parameters"]["config"])
    assert jinja2.Template(config.pop("model_name")).render(event=event) == "churn"
    deployed = dict(by_name("retrain-after-rollback")["parameters"]["config"])
    deployed.pop("model_name")
    assert config == deployed


def test_nothing_machine_specific() -> None:
    text = PREFECT_YAML.read_text()
    assert not re.search(r"(/home/|/work/|/Users/|/tmp/|[A-Z]:\\\\)", text)
    assert spec()["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $PMR_PROJECT_DIR }}"}}
    ]
    for deployment in spec()["deployments"]:
        env = deployment["work_pool"].get("job_variables", {}).get("env", {})
        assert not any(re.search("KEY|SECRET|PASSWORD|TOKEN", k) for k in env), "credentials belong to the worker"
