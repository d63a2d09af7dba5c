"""A reviewer's decision in the Prefect UI, in a real browser, against a real ``prefect server start``.

The pipeline runs in its own process until v2 pauses for approval; Chromium opens the paused run, clicks
Resume, reads the evidence in the dialog, fills the form and submits it. Then the run, the registry's stages
and its audit log are checked, just as after a decision made through the API.
"""

from __future__ import annotations

from typing import Any

import pytest

from prefect_model_registry.flows.dev.server import LocalPrefectServer
from prefect_model_registry.registry import Registry
from tests.conftest import skip_unless_ci
from tests.ui.conftest import OUTPUT, PipelineProcess, chromium_path, prefect_client

if chromium_path() is None:
    skip_unless_ci(
        "no Chromium on this machine: `.ci/system-deps` installs Debian's `chromium` (apt-get install chromium); "
        "the approval-dialog tests drive it with Playwright and never download a browser",
        allow_module_level=True,
    )

pytestmark = pytest.mark.slow


def open_resume_dialog(page: Any, server: LocalPrefectServer, pipeline: PipelineProcess, shot: str) -> Any:
    """Open the paused run's page, screenshot it, click Resume; the dialog with the evidence checked."""
    from playwright.sync_api import expect

    run = pipeline.paused_run(server)
    page.goto(f"{server.ui_url}/runs/flow-run/{run.id}")
    expect(page.get_by_text("Paused", exact=True).first).to_be_visible(timeout=60_000)
    resume = page.get_by_role("button", name="Resume")
    expect(resume).to_be_visible()
    # Settled (logs and the flow's name loaded) before the screenshot of what a reviewer finds.
    expect(page.get_by_text("Pausing flow, execution will continue")).to_be_visible()
    expect(page.get_by_role("link", name="retrain-model")).to_be_visible()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=OUTPUT / f"{shot}-paused-run.png")
    resume.click()

    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name=f"Approve {pipeline.model_name} v2 for production?")).to_be_visible()
    # The evidence: champion/challenger table, data-quality verdict, gates, working links to the artifacts.
    table = dialog.get_by_role("table").first
    expect(table).to_contain_text("Candidate")
    expect(table).to_contain_text("Champion")
    expect(table.get_by_role("row").filter(has_text="roc_auc (primary)")).to_have_count(1)
    expect(dialog).to_contain_text("Data quality: ✓ passed")
    expect(dialog).to_contain_text("Gates: ✓ data quality · ✓ drift · ✓ metrics · ✓ thresholds · ✓ champion/challenger")
    expect(dialog).to_contain_text("parent v1")
    for title, heading in (
        ("Model card", f"Model card: {pipeline.model_name} v2"),
        ("Lineage", f"Lineage: {pipeline.model_name} v2"),
    ):
        href = dialog.get_by_role("link", name=title).get_attribute("href")
        assert href and href.startswith(f"{server.ui_url}/artifacts/artifact/"), href
        artifact_page = page.context.new_page()
        artifact_page.goto(href)
        expect(artifact_page.get_by_role("heading", name=heading)).to_be_visible()
        artifact_page.close()
    # Field names read as a person would say them; the hints are shown under them.
    for label, hint in (
        ("Approve this version", "Switch on to approve and promote it."),
        ("Your name", "registry's audit log"),
        ("Comment (Optional)", "Required when you reject"),
    ):
        prop = dialog.locator(".schema-form-property").filter(has_text=label)
        expect(prop).to_have_count(1)
        expect(prop).to_contain_text(hint)
    expect(dialog.get_by_text("Your name (Optional)")).to_have_count(0)
    return run


def field(dialog: Any, label: str) -> Any:
    """The text box of the form field labelled ``label``."""
    return dialog.locator(".schema-form-property").filter(has_text=label).locator("textarea")


def read_run(server: LocalPrefectServer, run_id: Any) -> Any:
    with prefect_client(server) as client:
        return client.read_flow_run(run_id)


def test_reviewer_approves_in_the_ui(prefect_server: LocalPrefectServer, pipeline: PipelineProcess, page: Any) -> None:
    from playwright.sync_api import expect

    run = open_resume_dialog(page, prefect_server, pipeline, "approve")
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("switch").click()
    expect(dialog.get_by_role("switch")).to_have_attribute("aria-checked", "true")
    field(dialog, "Your name").fill("Dana Reviewer")
    field(dialog, "Comment").fill("Beats v1 on every metric; data quality clean.")
    page.locator(".p-modal__card").screenshot(path=OUTPUT / "approve-filled-dialog.png")
    page.screenshot(path=OUTPUT / "approve-filled-page.png")
    dialog.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("dialog")).to_have_count(0)

    assert pipeline.wait() == 0, pipeline.output()
    assert read_run(prefect_server, run.id).state.is_completed()
    reg = Registry.open(pipeline.registry)
    state = reg.state(pipeline.model_name)
    assert state.production == 2 and state.stage_of(1) == "archived" and state.aliases == {"champion": 2}
    decisions = [e for e in reg.history(pipeline.model_name) if e.type in ("approved", "rejected")]
    # Exactly the event a decision through the API records (see tests/flows/test_pipeline.py).
    assert [(e.type, e.version, e.actor, e.reason, e.run_id, e.data) for e in decisions] == [
        (
            "approved",
            2,
            "Dana Reviewer",
            "Beats v1 on every metric; data quality clean.",
            str(run.id),
            # The approval names what was approved: the artifact's hash and who registered it (issue 27).
            {
                "target_stage": "production",
                "artifact_sha256": reg.get_version(pipeline.model_name, 2).artifact.sha256,
                "registrant": "ci-bot",
            },
        )
    ]


def test_reviewer_rejects_in_the_ui(prefect_server: LocalPrefectServer, pipeline: PipelineProcess, page: Any) -> None:
    from playwright.sync_api import expect

    run = open_resume_dialog(page, prefect_server, pipeline, "reject")
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("switch")).to_have_attribute("aria-checked", "false")  # off: a rejection
    field(dialog, "Your name").fill("Erin Reviewer")
    dialog.get_by_role("button", name="Submit").click()  # no comment: the server refuses, the run stays paused
    toasts = page.locator(".p-toast-container")
    expect(toasts.get_by_text("Validation failed for field 'comment'").first).to_be_visible()
    expect(dialog).to_be_visible()
    assert pipeline.proc.poll() is None
    assert read_run(prefect_server, run.id).state.is_paused()

    field(dialog, "Comment").fill("Wait for the Q4 data before replacing v1.")
    page.screenshot(path=OUTPUT / "reject-filled-page.png")  # with the refusal's toast
    dialog.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("dialog")).to_have_count(0)

    assert pipeline.wait() == 1, pipeline.output()
    final = read_run(prefect_server, run.id).state
    assert final.is_failed() and "rejected by Erin Reviewer" in final.message
    reg = Registry.open(pipeline.registry)
    state = reg.state(pipeline.model_name)
    assert state.production == 1 and state.stage_of(2) == "staging" and state.blocked[2] == ["rejected"]
    assert state.aliases == {"champion": 1}
    last = reg.history(pipeline.model_name)[-1]
    assert (last.type, last.version, last.actor, last.reason, last.run_id) == (
        "rejected",
        2,
        "Erin Reviewer",
        "Wait for the Q4 data before replacing v1.",
        str(run.id),
    )
