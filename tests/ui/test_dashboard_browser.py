"""``pmr ui`` in the system Chromium against a registry built through the real retraining flow and the ``pmr`` CLI.

One ``prefect server start`` (the module's); the flow runs in its own process (``tests/ui/build_dashboard_registry``):
v1 to production, v2 paused for a reviewer and approved with ``pmr approve``, v3 paused and rejected with
``pmr reject`` (shown as waiting while it waits, never after), v4 blocked by the thresholds
gate, a corrupted batch refused by the data-quality gate. Then ``pmr alias`` moves ``champion``, ``pmr rollback``
puts v1 back and ``pmr verify --save`` records a check. ``pmr ui`` runs as a subprocess on a free port; every
non-loopback request is blocked. Every page is checked against the registry and screenshotted to
``test-output/dashboard/flows-*.png``; a ``pmr promote`` shows on the next load; no dialog ever opens.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from prefect_model_registry.flows.dev.server import LocalPrefectServer
from prefect_model_registry.registry import Registry
from tests.conftest import skip_unless_ci
from tests.ui.conftest import ROOT, PipelineProcess, chromium_path, prefect_client

if chromium_path() is None:
    skip_unless_ci(
        "no Chromium on this machine: `.ci/system-deps` installs Debian's `chromium` (apt-get install chromium)",
        allow_module_level=True,
    )

pytestmark = pytest.mark.slow

#: The dashboard's screenshots (git-ignored), beside those of tests/registry/test_dashboard.py.
SHOTS = ROOT / "test-output" / "dashboard"
#: The `pmr` console script (`prefect_model_registry.flows.cli:main`: decisions reach the paused runs).
PMR = "import sys; from prefect_model_registry.flows.cli import main; main(sys.argv[1:])"


def pmr(env: dict[str, str], registry: str, actor: str, *args: str) -> str:
    """Run ``pmr --registry REGISTRY --actor ACTOR ARGS`` as a user would; its output (it must exit 0)."""
    cmd = [sys.executable, "-c", PMR, "--registry", registry, "--actor", actor, *args]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"pmr {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def serve(registry: str, env: dict[str, str], procs: list[subprocess.Popen[str]]) -> str:
    """``pmr ui --port 0`` in a subprocess: the base URL it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-c", PMR, "--registry", registry, "ui", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
        cwd=ROOT,
    )
    procs.append(proc)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
    assert found, line + (proc.stdout.read() if proc.poll() is not None else "")
    return found.group(1)


def paused_run(server: LocalPrefectServer, flows: PipelineProcess, not_id: Any = None, timeout: float = 120) -> Any:
    """The model's flow run paused for a decision, other than ``not_id`` (a run just resumed)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    paused = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])))
    deadline = time.monotonic() + timeout
    with prefect_client(server) as client:
        while time.monotonic() < deadline:
            if flows.proc.poll() is not None:
                raise AssertionError(f"the flows exited ({flows.proc.returncode}) before pausing:\n{flows.output()}")
            for run in client.read_flow_runs(flow_run_filter=paused):
                if (run.parameters.get("config") or {}).get("model_name") == flows.model_name and run.id != not_id:
                    return run
            time.sleep(0.5)
    raise AssertionError(f"no paused run of {flows.model_name} within {timeout}s:\n{flows.output()}")


def timeline(page: Any) -> list[tuple[str, str, str]]:
    """The model page's timeline rows: (stage or alias held, version, started by)."""
    held, version, by = (column(page, "timeline-table", i) for i in (1, 2, 5))
    return list(zip(held, version, by, strict=True))


def column(page: Any, table: str, index: int) -> list[str]:
    """The text of one column of a table's body rows."""
    return [t.strip() for t in page.locator(f"#{table} tbody tr td:nth-child({index})").all_inner_texts()]


def test_every_page_matches_a_registry_built_by_the_flows_and_the_cli(
    prefect_server: LocalPrefectServer, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    procs: list[subprocess.Popen[str]] = []
    model = f"bc-{uuid.uuid4().hex[:6]}"
    registry = str(tmp_path / "registry")
    env = {**os.environ, **prefect_server.client_env(), "PMR_ACTOR": "ci-bot"}
    log = tmp_path / "flows.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.ui.build_dashboard_registry", model, registry, str(tmp_path)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    flows = PipelineProcess(model, registry, proc, log)
    try:
        first = paused_run(prefect_server, flows)  # v2 waits for a reviewer
        approved = pmr(env, registry, "dana", "approve", model, "2", "--comment", "metrics hold up")
        assert "took the decision" in approved, approved
        paused_run(prefect_server, flows, not_id=first.id)  # v3, staged, waits for a reviewer
        base = serve(registry, env, procs)
        SHOTS.mkdir(parents=True, exist_ok=True)
        outside: list[str] = []
        dialogs: list[str] = []
        context = browser.new_context(viewport={"width": 1280, "height": 1400})
        context.set_default_timeout(30_000)

        def only_loopback(route: Any) -> None:
            if urlsplit(route.request.url).hostname == "127.0.0.1":
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", only_loopback)
        page = context.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

        # Waiting: v3, with its gates' verdicts, deltas against production and the approve line.
        page.goto(base + "/waiting")
        entry = page.locator(f"section.waiting#{model}-v3")
        expect(entry).to_have_count(1)
        expect(entry.locator("ul.gates li")).not_to_have_count(0)
        expect(entry.locator("table.waiting-metrics")).to_contain_text("roc_auc")
        expect(entry.locator("code.approve")).to_contain_text(f"pmr approve {model} 3")
        page.screenshot(path=str(SHOTS / "flows-waiting.png"), full_page=True)

        pmr(env, registry, "erin", "reject", model, "3", "--comment", "wait for the Q4 data")
        assert flows.wait() == 0, flows.output()
        pmr(env, registry, "alice", "alias", model, "champion", "1", "--reason", "first champion")
        pmr(env, registry, "alice", "alias", model, "champion", "2", "--reason", "v2 wins the holdout")
        pmr(env, registry, "bob", "rollback", model, "--reason", "latency regression")
        pmr(env, registry, "ops", "verify", "--save")
        reg = Registry.open(registry)
        state = reg.state(model)
        assert (state.production, state.aliases, reg.latest_version(model)) == (1, {"champion": 2}, 4)
        assert "rejected" in state.blocked[3] and "gate:thresholds" in state.blocked[4]

        # Waiting: a rejected version never waits.
        page.reload()
        expect(page.locator(f"section.waiting#{model}-v3")).to_have_count(0)

        # Overview: stages, aliases, blocked versions, the last change.
        page.goto(base + "/")
        row = page.locator("#models-table tr.model-row").filter(has_text=model)
        expect(row).to_have_count(1)
        cells = row.locator("td")
        expect(cells.nth(1)).to_have_text("v1")
        expect(row.locator(".alias")).to_have_text(["champion→v2"])
        expect(cells.nth(2)).to_have_text("v3")  # rejected, still in staging
        expect(cells.nth(4)).to_have_text("v4")
        expect(cells.nth(6)).to_contain_text("v3: rejected")
        expect(cells.nth(6)).to_contain_text(re.compile(r"v4: .*gate:thresholds"))
        expect(row.locator(".actor")).to_have_text("bob")
        expect(row).to_contain_text("latency regression")
        page.screenshot(path=str(SHOTS / "flows-overview.png"), full_page=True)

        # Model: one point per version, the production versions (v1, v2) marked, the timeline, the audit log.
        page.goto(f"{base}/models/{model}")
        page.wait_for_function("document.getElementById('metrics-chart').dataset.points !== undefined")
        chosen = page.evaluate("() => window.pmrChart.data.datasets.map(d => d.label)")
        assert chosen, "no metric charted by default"
        points = page.evaluate(
            "() => window.pmrChart.data.datasets.map((d, i) => window.pmrChart.getDatasetMeta(i).data.length)"
        )
        assert points == [4] * len(chosen)
        radius = page.evaluate("() => window.pmrChart.data.datasets[0].pointRadius")
        assert radius == [7, 7, 3, 3]  # v1 and v2 held production; v3 and v4 never did
        assert page.locator("#metrics-chart").get_attribute("data-production-bands") == "2"
        for i, label in enumerate(chosen):
            values = page.evaluate(f"() => window.pmrChart.data.datasets[{i}].data")
            assert values == [reg.get_version(model, v).metrics.get(label) for v in (1, 2, 3, 4)]
        assert column(page, "versions-table", 1) == ["v4", "v3", "v2", "v1"]
        periods = timeline(page)
        # oldest first: v1, v2 (approved with `pmr approve`), v1 again (`pmr rollback`, by bob)
        assert [(v, by) for held, v, by in periods if held == "production"] == [
            ("v1", "ci-bot"),
            ("v2", "ci-bot"),
            ("v1", "bob"),
        ]
        # the flow set champion with each promotion, then `pmr alias` moved it back and forth
        assert [(v, by) for held, v, by in periods if held == "champion"] == [
            ("v1", "ci-bot"),
            ("v2", "ci-bot"),
            ("v1", "alice"),
            ("v2", "alice"),
        ]
        events = reg.history(model)
        expect(page.locator("#audit-table")).to_contain_text("wait for the Q4 data")
        assert page.locator("#audit-table tbody tr td:first-child").first.inner_text() == str(events[-1].seq)
        page.screenshot(path=str(SHOTS / "flows-model.png"), full_page=True)

        # Version: v4's failed thresholds gate reads with its observed value.
        page.goto(f"{base}/models/{model}/versions/4")
        thresholds = reg.reports(model, 4)["thresholds"]
        failed = [c for c in thresholds["checks"] if not c["passed"]]
        assert failed
        for check in failed:
            expect(page.locator("body")).to_contain_text(check["name"])
        expect(page.locator("body")).to_contain_text("blocked")
        lineage = reg.get_version(model, 4).lineage
        assert lineage is not None and lineage.dataset_fingerprint and lineage.parent_version == 2
        expect(page.locator("body")).to_contain_text(lineage.dataset_fingerprint)
        page.screenshot(path=str(SHOTS / "flows-version.png"))  # the top: its reports run to many screens

        # Audit: every event of the model, newest first, and the saved verify result.
        page.goto(f"{base}/audit?model={model}")
        expect(page.locator("#verify-result")).to_contain_text("OK")
        expect(page.locator("#verify-result")).to_contain_text("0 error(s)")
        assert column(page, "audit-table", 3)[: len(events)] == [str(e.seq) for e in reversed(events)][:50]
        expect(page.locator("#audit-table")).to_contain_text("erin")
        page.screenshot(path=str(SHOTS / "flows-audit.png"), full_page=True)

        # A change made with `pmr promote` shows on the next load.
        pmr(
            env,
            registry,
            "alice",
            "promote",
            model,
            "2",
            "--to",
            "production",
            "--through-staging",
            "--reason",
            "fix shipped",
        )
        page.goto(base + "/")
        expect(row.locator("td").nth(1)).to_have_text("v2")
        expect(row).to_contain_text("fix shipped")
        page.goto(f"{base}/models/{model}")
        page.wait_for_function("window.pmrChart !== undefined")
        production = [(v, by) for held, v, by in timeline(page) if held == "production"]
        assert production[-1] == ("v2", "alice") and len(production) == 4
        context.close()
        assert not dialogs and not outside, (dialogs, outside)
    finally:
        for ui in procs:
            ui.terminate()
            ui.wait(timeout=30)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
