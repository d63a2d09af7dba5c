"""Stored text in the model card, the lineage artifact, the data-quality report and the approval dialog renders as
the text it is: no link, image, HTML, heading, emphasis or extra table cell comes from it (issue 27).

Rendered with markdown-it (CommonMark plus tables, as the Prefect UI renders Markdown), then the HTML is checked
for anything the stored text could have made.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from markdown_it import MarkdownIt

from prefect_model_registry.flows.core.evidence import approval_description, lineage_markdown, model_card
from prefect_model_registry.registry.models import ArtifactRef, Lineage, ModelVersion
from prefect_model_registry.validations.report import CheckResult, GateReport

#: A phishing link, an image that calls home, raw HTML, a fake heading on a new line, emphasis, a code-span
#: breakout, a table-cell breakout, an autolink, and terminal escapes.
HOSTILE = (
    "[Approve here](http://evil.example/a) ![x](http://evil.example/p.png) <img src=x onerror=alert(1)>"
    "\n# Approved by security **bold** `tick` | cell <http://evil.example> \x1b[2K\u202e"
)


def render(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(markdown)


def assert_inert(html: str) -> None:
    assert "evil.example" in html  # the text is shown...
    for made in ('href="http://evil', "<img", 'src="http', "<h1>Approved", "<strong>bold", "<code>tick"):
        assert made not in html, f"stored text became markup: {made!r}\n{html}"
    assert "\x1b" not in html and "\u202e" not in html


@pytest.fixture
def version() -> ModelVersion:
    return ModelVersion(
        name="churn",
        version=3,
        artifact=ArtifactRef(sha256="a" * 64, size=10, format="skops", key="blobs/sha256/" + "a" * 64),
        metrics={f"auc {HOSTILE}": 0.91},
        params={HOSTILE: HOSTILE, "C": 1.0},
        tags={"owner": HOSTILE},
        description=HOSTILE,
        lineage=Lineage(
            dataset_uri=f"s3://b/{HOSTILE}",
            dataset_fingerprint=HOSTILE,
            code_version=HOSTILE,
            flow_name=HOSTILE,
            flow_run_id=HOSTILE,
            deployment=HOSTILE,
            packages={HOSTILE: HOSTILE},
        ),
        created_by=HOSTILE,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def reports() -> dict[str, GateReport]:
    failed = CheckResult(name=HOSTILE, passed=False, expected=HOSTILE, observed=HOSTILE, samples=(HOSTILE,))
    summary = {"candidate": {HOSTILE: 0.9}, "champion": {HOSTILE: 0.8}, "deltas": {HOSTILE: 0.1}, "primary": "auc"}
    return {
        "data_quality": GateReport("data_quality", False, (failed,), {"rows": 10, "dataset": HOSTILE}),
        "champion_challenger": GateReport("champion_challenger", True, (), summary),
    }


def test_model_card_renders_stored_text_as_text(version: ModelVersion, reports: dict[str, GateReport]) -> None:
    assert_inert(render(model_card(version, reports, "staging")))


def test_lineage_artifact_renders_stored_text_as_text(version: ModelVersion) -> None:
    assert_inert(render(lineage_markdown(version)))


def test_data_quality_report_renders_the_data_as_text(reports: dict[str, GateReport]) -> None:
    assert_inert(render(reports["data_quality"].to_markdown()))


def test_approval_dialog_renders_stored_text_as_text(version: ModelVersion, reports: dict[str, GateReport]) -> None:
    links = {"Model card": "http://127.0.0.1:4200/artifacts/artifact/1", "Lineage": "artifact `churn-lineage`"}
    html = render(approval_description(version, reports, links, note="", stage="production"))
    assert_inert(html)
    assert 'href="http://127.0.0.1:4200/artifacts/artifact/1"' in html  # the package's own links still work
