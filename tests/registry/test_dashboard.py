"""``pmr ui``: the read-only dashboard's pages against registries on both backends, built through the Registry API."""

from __future__ import annotations

import html
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from starlette.testclient import TestClient

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.cli import main
from prefect_model_registry.registry.dashboard import views
from prefect_model_registry.registry.dashboard.app import allowed_hosts, create_app, host_allowed
from prefect_model_registry.registry.dashboard.render import script_json

EVIL = "</script><img src=x onerror=alert(1)>"
#: How the dashboard writes EVIL in HTML text and in its embedded JSON.
EVIL_HTML = html.escape(EVIL, quote=True)
EVIL_JSON = json.dumps(EVIL).replace("<", "\\u003c").replace(">", "\\u003e").strip('"')
PORT = 8765
#: Screenshots of the dashboard's pages (git-ignored, as the approval-dialog tests' screenshots).
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "dashboard"
BASE = f"http://127.0.0.1:{PORT}"


def build(reg: Registry) -> None:
    """churn v1..v4 and fraud v1: promotions, a rollback, a rejection, an alias move, a failed gate, EVIL everywhere."""
    evil_info = VersionInfo(
        metrics={"auc": 0.80, "f1": 0.70, EVIL: 0.5},
        params={"C": 1.0, EVIL: EVIL},
        tags={"team": "risk", EVIL: EVIL},
        description=EVIL,
    )
    reg.register("churn", b"model-1", evil_info, fmt="bytes", actor=EVIL)
    reg.register("churn", b"model-2", VersionInfo(metrics={"auc": 0.85, "f1": 0.72}, params={"C": 0.5}), fmt="bytes")
    reg.register("churn", b"model-3", VersionInfo(metrics={"auc": 0.83, "f1": 0.71}), fmt="bytes", actor="carol")
    reg.register("churn", b"model-4", VersionInfo(metrics={"auc": 0.90, "f1": 0.75}), fmt="bytes", actor="dave")
    reg.promote("churn", 1, "production", actor=EVIL, reason=EVIL, through_staging=True)
    reg.set_alias("churn", "champion", 1, actor="alice", reason="first champion")
    reg.promote("churn", 2, "production", actor="alice", reason="better auc", through_staging=True)
    reg.set_alias("churn", "champion", 2, actor="alice", reason=EVIL)
    reg.rollback("churn", actor="bob", reason="latency regression")
    reg.promote("churn", 3, "staging", actor="carol", reason="candidate")
    reg.record_decision("churn", 3, approved=False, reviewer="erin", comment=EVIL)
    report = {"columns": {"age": {"psi": 0.41, "threshold": 0.2, "drifted": True}}, "summary": EVIL}
    reg.record_report("churn", 4, "drift", report, passed=False, actor="ci")
    reg.register("fraud", b"fraud-1", VersionInfo(metrics={"recall": 0.6}), fmt="bytes")
    reg.describe("fraud", 1, "recall first", actor=EVIL)


@pytest.fixture
def built(location: str) -> str:
    build(Registry.open(location))
    return location


@pytest.fixture
def client(built: str) -> Iterator[TestClient]:
    with TestClient(create_app(built, bound_host="127.0.0.1", port=PORT), base_url=BASE) as c:
        yield c


def get(client: TestClient, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.text[:2000]
    return response.text


def chart(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', page, re.S)
    assert found is not None
    return json.loads(found.group(1))


def text(page: str) -> str:
    """The page's visible text, roughly: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_overview_lists_every_model_with_its_stages_aliases_and_last_change(client: TestClient) -> None:
    page = get(client, "/")
    rows = text(page)
    assert 'href="/models/churn"' in page and 'href="/models/fraud"' in page
    assert "champion→v2" in rows
    churn = rows[rows.index("churn") : rows.index("fraud")]
    assert "v1" in churn and "v3" in churn  # production v1 after the rollback, v3 in staging
    assert "v3: rejected" in churn and "v4: gate:drift" in churn
    assert "by ci" in churn  # the last change: the failed drift report
    assert page.count('<svg class="spark"') == 1  # churn's auc trend; fraud has one version
    assert 'id="filter"' in page and "/static/dashboard.js" in page


def test_model_page_versions_chart_timeline_and_audit_log(client: TestClient) -> None:
    page = get(client, "/models/churn?metric=auc&metric=f1")
    data = chart(page)
    assert data["versions"] == [1, 2, 3, 4]
    assert data["production"] == [True, True, False, False]
    assert [s["metric"] for s in data["series"]] == ["auc", "f1"]
    assert data["series"][0]["values"] == [0.8, 0.85, 0.83, 0.9]
    assert [p["version"] for p in data["periods"]] == [1, 2, 1]
    assert data["periods"][-1]["end"] is None and all(p["end"] for p in data["periods"][:-1])
    # one column per metric, every version a row
    header = page[page.index('id="versions-table"') :]
    header = header[: header.index("</thead>")]
    for metric in ("auc", "f1", EVIL_HTML):
        assert f"<th>{metric}</th>" in header
    assert [int(v) for v in re.findall(r'<td data-sort="(\d+)"><a href="/models/churn/versions/', page)] == [4, 3, 2, 1]
    timeline = text(page[page.index('id="timeline-table"') : page.index("Approval policy")])
    assert re.search(r"production v1 .* production v2 .* production v1 .* now", timeline)
    assert re.search(r"champion v1 .* champion v2 .* now", timeline)
    assert re.search(r"staging v3 .* now", timeline)
    audit = text(page[page.index('id="audit-table"') :])
    seqs = [int(s) for s in re.findall(r"<tr>\s*<td>(\d+)</td>", page[page.index('id="audit-table"') :])]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) >= 10
    assert "rolled back" in audit and "latency regression" in audit


def test_model_page_sorts_and_filters_as_pmr_versions(client: TestClient) -> None:
    page = get(client, "/models/churn?where=auc>=0.84&sort=-auc")
    table = page[page.index('id="versions-table"') : page.index('id="timeline-table"')]
    assert re.findall(r'href="/models/churn/versions/(\d+)"', table) == ["4", "2"]
    page = get(client, "/models/churn?where=auc>>1")
    assert 'class="error"' in page


def test_audit_log_is_paginated_newest_first(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views, "PAGE_SIZE", 4)
    first = get(client, "/models/churn")
    second = get(client, "/models/churn?page=2")
    seqs = [re.findall(r"<tr>\s*<td>(\d+)</td>", p[p.index('id="audit-table"') :]) for p in (first, second)]
    assert len(seqs[0]) == 4 and int(seqs[0][-1]) == int(seqs[1][0]) + 1
    assert "Page 2 of" in second and "?page=1" in second and "?page=3" in second
    only = get(client, "/models/churn?type=rolled_back")
    assert re.findall(r"<td>(rolled_back|stage_changed|registered)</td>", only) == ["rolled_back"]


def test_version_page_metrics_params_lineage_reports_and_diff(client: TestClient) -> None:
    page = get(client, "/models/churn/versions/4?against=2")
    shown = text(page)
    assert "churn v4" in shown and "auc 0.9" in shown
    report = text(page[page.index("Gate reports") : page.index("Scoring runs")])
    assert "drift: failed" in report and "psi 0.41" in report and "threshold 0.2" in report
    assert "blocked: gate:drift" in shown
    diff = text(page[page.index('id="diff-table"') :])
    assert "metrics auc 0.9 0.85 +0.05" in diff and "metrics f1 0.75 0.72 +0.03" in diff
    assert "python_version" in shown and "parents" in shown
    rejected = text(get(client, "/models/churn/versions/3"))
    assert "blocked: rejected" in rejected and "staging" in rejected


@pytest.mark.parametrize(
    "url",
    [
        "/models/nope",
        "/models/churn/versions/99",
        "/models/churn/versions/abc",
        "/models/churn/versions/0",
        "/models/churn/versions/1?against=42",
        "/models/Bad%20Name",
        "/no/such/page",
    ],
)
def test_unknown_model_or_version_is_a_404_page(client: TestClient, url: str) -> None:
    page = get(client, url, 404)
    assert "<title>Not found" in page and 'href="/"' in page


def test_a_foreign_host_header_is_refused(client: TestClient) -> None:
    for host in ("evil.example:8765", "127.0.0.1:9999", "localhost.evil.example:8765", ""):
        response = client.get("/", headers={"host": host})
        assert response.status_code == 400 and "Host" in response.text
    assert client.get("/", headers={"host": "localhost:8765"}).status_code == 200
    response = client.get("/static/chart.umd.min.js", headers={"host": "rebind.example:8765"})
    assert response.status_code == 400


def test_no_route_changes_anything(client: TestClient, built: str) -> None:
    before = Registry.open(built).history("churn")
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert client.request(method, "/models/churn").status_code == 405
    assert len(Registry.open(built).history("churn")) == len(before)


def test_every_free_text_field_is_escaped_in_html_and_chart_json(client: TestClient) -> None:
    pages = {
        "overview": get(client, "/"),
        "model": get(client, "/models/churn?metric=" + EVIL.replace("<", "%3C").replace(">", "%3E")),
        "model, audit by actor": get(client, "/models/churn?actor=" + EVIL.replace("<", "%3C").replace(">", "%3E")),
        "version": get(client, "/models/churn/versions/1"),
        "diff": get(client, "/models/churn/versions/2?against=1"),
    }
    for what, page in pages.items():
        assert EVIL not in page, what
        assert "<img" not in page, what
        assert "onerror=alert(1)>" not in page, what
    assert EVIL_HTML in pages["overview"]  # fraud's last change: its actor
    for what in ("model", "version", "diff"):
        assert EVIL_HTML in pages[what], what
    data = chart(pages["model"])
    assert [s["metric"] for s in data["series"]] == [EVIL]  # parsed back to the same text
    assert EVIL_JSON in pages["model"]
    assert "\\u003c/script\\u003e\\u003cimg" in pages["model"]
    version = pages["version"]
    # description, tag, param name and value, metric name, actor: each shown as text
    assert version.count(EVIL_HTML) >= 5
    assert pages["model"].count(EVIL_HTML) >= 4  # metric column, reason, actor, comment, alias-move reason


def test_script_json_escapes_markup_characters() -> None:
    out = str(script_json({"a": "</script><b>&\u2028"}))
    assert "<" not in out and ">" not in out and "&" not in out and "\u2028" not in out
    assert json.loads(out) == {"a": "</script><b>&\u2028"}


def test_a_promotion_appears_on_the_next_load(client: TestClient, built: str) -> None:
    assert chart(get(client, "/models/churn"))["production"] == [True, True, False, False]
    reg = Registry.open(built)
    reg.register("churn", b"model-5", VersionInfo(metrics={"auc": 0.95, "f1": 0.8}), fmt="bytes")
    reg.promote("churn", 5, "production", actor="frank", reason="drift waived", through_staging=True)
    page = get(client, "/models/churn")
    assert chart(page)["production"] == [True, True, False, False, True]
    assert [p["version"] for p in chart(page)["periods"]] == [1, 2, 1, 5]
    assert "drift waived" in page
    overview = text(get(client, "/"))
    assert "by frank" in overview


def test_the_overview_keeps_what_a_head_event_names_and_sees_every_change(client: TestClient, built: str) -> None:
    def row(page: str) -> str:
        body = text(page)
        return body[body.index("churn") : body.index("fraud")]

    first = get(client, "/")
    assert "v4" in row(first) and "by frank" not in row(first)
    reg = Registry.open(built)
    reg.register("churn", b"model-5", VersionInfo(metrics={"auc": 0.95, "f1": 0.8}), fmt="bytes", actor="erin")
    second = get(client, "/")  # a new version: newest version, trend and last change read again
    assert "v5" in row(second) and "by erin" in row(second) and second.count("<svg") >= first.count("<svg")
    reg.promote("churn", 5, "production", actor="frank", reason="drift waived", through_staging=True)
    assert "by frank" in row(get(client, "/"))  # a new head event, the same newest version


def test_the_overview_memo_is_keyed_by_head_and_newest_version() -> None:
    memo = views.OverviewMemo(size=2)
    memo.put("a", (3, "h3", 2), {"last": 1})
    assert memo.get("a", (3, "h3", 2)) == {"last": 1}
    assert memo.get("a", (4, "h4", 2)) is None and memo.get("a", (3, "h3", 3)) is None
    assert memo.get("a", (3, "other", 2)) is None  # same sequence, another head: not the same log
    memo.put("b", (1, "h1", 1), {})
    memo.put("c", (1, "h1", 1), {})
    assert memo.get("a", (3, "h3", 2)) is None and memo.get("c", (1, "h1", 1)) == {}  # bounded, oldest dropped


def test_security_headers_and_static_chart_library(client: TestClient) -> None:
    response = client.get("/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    lib = client.get("/static/chart.umd.min.js")
    assert lib.status_code == 200 and "Chart.js v4" in lib.text[:200]
    assert client.get("/static/chart.js.LICENSE.md").status_code == 200


def test_dataset_download_is_off_unless_allowed(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    location = str(tmp_path / "registry")
    from prefect_model_registry.registry import Lineage

    reg = Registry.open(location)
    reg.register("m", b"x", VersionInfo(lineage=Lineage(dataset_uri=str(data))), fmt="bytes")
    with TestClient(create_app(location, bound_host="127.0.0.1", port=PORT), base_url=BASE) as off:
        assert "--allow-data-download" in get(off, "/models/m/versions/1")
        assert off.get("/models/m/versions/1/dataset").status_code == 403
    app = create_app(location, bound_host="127.0.0.1", port=PORT, allow_data_download=True)
    with TestClient(app, base_url=BASE) as on:
        assert 'href="/models/m/versions/1/dataset"' in get(on, "/models/m/versions/1")
        assert on.get("/models/m/versions/1/dataset").content == b"a,b\n1,2\n"


def test_allowed_hosts() -> None:
    assert allowed_hosts("127.0.0.1", 80) == {"127.0.0.1:80", "localhost:80"}
    assert allowed_hosts("::1", 80) == {"[::1]:80", "localhost:80"}
    assert allowed_hosts("10.0.0.5", 80) == {"10.0.0.5:80"}
    assert allowed_hosts("0.0.0.0", 80) is None
    wildcard = allowed_hosts("0.0.0.0", 80)
    assert host_allowed("10.1.2.3:80", wildcard, 80) and host_allowed("[fe80::1]:80", wildcard, 80)
    assert not host_allowed("evil.example:80", wildcard, 80) and not host_allowed("10.1.2.3:81", wildcard, 80)


def pmr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def test_pmr_ui_busy_port_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    location = str(tmp_path / "registry")
    Registry.open(location).register("m", b"x", fmt="bytes")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code, _, err = pmr(capsys, "--registry", location, "ui", "--port", str(port))
    assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in err and len(err.strip().splitlines()) == 1


def test_pmr_ui_unreachable_registry_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = pmr(capsys, "--registry", "s3://no-such-bucket-pmr/x", "ui", "--port", "0")
    assert code == 1 and "cannot open the registry" in err and len(err.strip().splitlines()) == 1


def test_pmr_ui_in_chromium_draws_one_point_per_version_and_runs_no_injected_script(
    tmp_path: Path,
) -> None:
    from tests.conftest import skip_unless_ci
    from tests.ui.conftest import CHROMIUM_ARGS, chromium_path

    path = chromium_path()
    if path is None:
        skip_unless_ci("no Chromium on this machine: `.ci/system-deps` installs Debian's `chromium`")
    from playwright.sync_api import sync_playwright

    location = str(tmp_path / "registry")
    build(Registry.open(location))
    code = "import sys; from prefect_model_registry.registry.cli import main; main(sys.argv[1:])"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-c", code, "--registry", location, "ui", "--port", "0"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
        assert found, line + (proc.stdout.read() if proc.poll() is not None else "")
        base = found.group(1)
        OUTPUT.mkdir(parents=True, exist_ok=True)
        outside: list[str] = []
        dialogs: list[str] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 1400})

                def only_loopback(route: Any) -> None:
                    host = urlsplit(route.request.url).hostname
                    if host == "127.0.0.1":
                        route.continue_()
                    else:
                        outside.append(route.request.url)
                        route.abort()

                context.route("**/*", only_loopback)
                page = context.new_page()
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                page.goto(base + "/")
                page.screenshot(path=str(OUTPUT / "overview.png"), full_page=True)
                page.fill("#filter", "fraud")
                assert page.locator("#models-table tbody tr:visible").count() == 1
                page.goto(base + "/models/churn?metric=auc&metric=f1")
                page.wait_for_function("document.getElementById('metrics-chart').dataset.points !== undefined")
                points = page.evaluate(
                    "() => window.pmrChart.data.datasets.map(d => window.pmrChart.getDatasetMeta("
                    "window.pmrChart.data.datasets.indexOf(d)).data.length)"
                )
                assert points == [4, 4]  # one point per version, for each chosen metric
                radius = page.evaluate("() => window.pmrChart.data.datasets[0].pointRadius")
                assert radius == [7, 7, 3, 3]  # v1 and v2 held production
                bands = page.locator("#metrics-chart").get_attribute("data-production-bands")
                assert bands == "2"  # their columns shaded
                page.screenshot(path=str(OUTPUT / "model.png"), full_page=True)
                page.click("#versions-table thead th:text-is('auc')")  # ascending
                order = page.locator("#versions-table tbody tr td:first-child").all_inner_texts()
                assert order == ["v1", "v3", "v2", "v4"]
                page.goto(base + "/models/churn/versions/1?against=4")
                assert EVIL in page.locator(".description").inner_text()
                page.screenshot(path=str(OUTPUT / "version.png"), full_page=True)
                page.goto(base + "/audit")
                page.screenshot(path=str(OUTPUT / "audit.png"), full_page=True)
                page.goto(base + "/models/churn?metric=" + quote(EVIL))
                page.wait_for_function("window.pmrChart !== undefined")
                assert page.evaluate("() => window.pmrChart.data.datasets[0].label") == EVIL
            finally:
                browser.close()
        assert not dialogs and not outside
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_pmr_ui_beyond_loopback_warns_there_is_no_login(tmp_path: Path) -> None:
    location = str(tmp_path / "registry")
    Registry.open(location).register("m", b"x", fmt="bytes")
    code = "import sys; from prefect_model_registry.registry.cli import main; main(sys.argv[1:])"
    args = [sys.executable, "-c", code, "--registry", location, "ui", "--host", "0.0.0.0", "--port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        warning = proc.stderr.readline()
        assert "beyond this machine" in warning and "no login" in warning
        found = re.search(r"on http://0\.0\.0\.0:(\d+)/", proc.stdout.readline())
        assert found
        port = int(found.group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
            assert conn.recv(64).startswith(b"HTTP/1.1 200")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(f"GET / HTTP/1.1\r\nHost: rebind.example:{port}\r\nConnection: close\r\n\r\n".encode())
            assert conn.recv(64).startswith(b"HTTP/1.1 400")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_audit_page_lists_every_model_filtered_paginated_with_csv(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = get(client, "/audit")
    rows = page[page.index('id="audit-table"') :]
    assert 'href="/models/churn"' in rows and 'href="/models/fraud"' in rows
    assert EVIL not in page and EVIL_HTML in page
    only = get(client, "/audit?model=churn&type=alias_set")
    assert re.findall(r"<td>(alias_set|registered|described)</td>", only) == ["alias_set", "alias_set"]
    by = get(client, "/audit?actor=erin")
    assert re.findall(r'<td class="actor">([^<]*)</td>', by) == ["erin"]
    assert "0 event(s)" in get(client, "/audit?since=2999-01-01")
    assert "2 event(s)" in get(client, "/audit?model=churn&type=alias_set&until=2999-01-01T00:00:00%2B00:00")
    assert 'class="error"' in get(client, "/audit?since=yesterday")
    get(client, "/audit?model=nope", 404)
    monkeypatch.setattr(views, "PAGE_SIZE", 3)
    second = get(client, "/audit?model=churn&page=2")
    assert "Page 2 of 4" in second and "?model=churn&amp;page=3" in second
    response = client.get("/audit.csv?model=churn&type=rejected")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    lines = response.text.splitlines()
    assert lines[0] == "model,seq,at,actor,type,version,change,reason"
    assert len(lines) == 2 and lines[1].startswith("churn,11,") and lines[1].endswith(EVIL)
    assert client.get("/audit.csv?since=nope").status_code == 400


def test_csv_cells_that_look_like_formulas_stay_text() -> None:
    assert views.csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and views.csv_cell("-1+1") == "'-1+1"
    assert views.csv_cell("plain") == "plain" and views.csv_cell(None) == ""


def test_waiting_page_lists_staged_versions_needing_an_approval_never_rejected_or_blocked(
    client: TestClient, built: str
) -> None:
    from prefect_model_registry.registry import ApprovalRules

    assert "No version is waiting for a reviewer." in get(client, "/waiting")  # churn has no policy
    reg = Registry.open(built)
    for n in (1, 2, 3, 4):
        reg.register("loans", f"loans-{n}".encode(), VersionInfo(metrics={"auc": 0.7 + n / 100}), fmt="bytes")
    reg.set_policy("loans", ApprovalRules(stages=["production"]), actor="lead")
    reg.promote("loans", 1, "production", actor="lead", break_glass=True, through_staging=True, reason="first")
    for n in (2, 3, 4):
        reg.promote("loans", n, "staging", actor="dev")
    reg.record_decision("loans", 3, approved=False, reviewer="erin", comment="no")
    reg.record_report("loans", 4, "data_quality", {"success": False, "note": EVIL}, passed=False, actor="ci")
    page = get(client, "/waiting")
    assert re.findall(r'<section class="waiting" id="([^"]+)"', page) == ["loans-v2"]
    assert "pmr approve loans 2" in page and "against production v1" in page and "+0.01" in page
    overview = get(client, "/")
    row = overview[overview.index('href="/models/loans"') :]
    assert 'href="/waiting#loans-v2"' in row[: row.index("</tr>")]
    assert "v3: rejected" in text(row[: row.index("</tr>")]) and "v4: gate:data_quality" in text(row)


def test_a_gate_report_reads_as_failed_checks_first_with_observed_values(client: TestClient, built: str) -> None:
    from prefect_model_registry.validations.report import CheckResult, GateReport

    report = GateReport(
        gate="data_quality",
        passed=False,
        checks=(
            CheckResult("not_null(age)", False, "no nulls", "3 nulls (1.5%)", samples=(None, EVIL), details={"n": 3}),
            CheckResult("between(income, 0, 1e7)", True, "0 <= income <= 1e7", "all 200 in range"),
            CheckResult(EVIL, False, EVIL, EVIL),
        ),
        summary={"evaluated": 3, "failed": 2, "dataset": EVIL},
    )
    Registry.open(built).record_report("churn", 2, "data_quality", report.to_dict(), passed=False, actor="ci")
    page = get(client, "/models/churn/versions/2")
    section = page[page.index("Gate reports") : page.index("Scoring runs")]
    assert "2 of 3 check(s) failed." in section
    failed = text(section[section.index("failed-checks") : section.index("passed-checks")])
    assert "not_null(age) no nulls 3 nulls (1.5%)" in failed and "details n 3" in failed
    assert "1 passed check(s)" in section and "all 200 in range" in section
    assert EVIL not in page and section.count(EVIL_HTML) >= 4


def test_export_writes_static_pages_with_relative_links(
    built: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect_model_registry.registry.dashboard.export import export

    monkeypatch.setattr(views, "VERSION_ROWS", 2)  # offline, a model page still holds every version
    monkeypatch.setattr(views, "TIMELINE_ROWS", 2)  # and every period
    out = tmp_path / "site"
    done = export(built, out, versions=2)
    assert sorted(done.pages) == [
        "index.html",
        "models/churn/index.html",
        "models/churn/versions/3.html",
        "models/churn/versions/4.html",
        "models/fraud/index.html",
        "models/fraud/versions/1.html",
        "waiting.html",
    ]
    assert (out / "static" / "chart.umd.min.js").is_file() and (out / "static" / "chart.js.LICENSE.md").is_file()
    for page in done.pages:
        body = (out / page).read_text()
        assert not re.search(r'(href|src)="/', body), page
        assert EVIL not in body, page
    model = (out / "models/churn/index.html").read_text()
    assert 'href="versions/4.html"' in model and 'src="../../static/chart.umd.min.js"' in model
    assert 'href="../../index.html"' in model
    assert "data-not-exported" in model  # v1, v2: only the newest 2 version pages were written
    assert '<form hidden method="get"' in model and 'id="chart-data"' in model
    assert chart(model)["versions"] == [1, 2, 3, 4] and 'id="chart-scope"' not in model
    assert 'id="timeline-scope"' not in model
    table = model[model.index('id="versions-table"') : model.index('id="timeline-table"')]
    assert re.findall(r'<td data-sort="(\d+)">', table) == ["4", "3", "2", "1"]


def test_pmr_ui_export_refuses_a_non_empty_directory_without_force(
    built: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = pmr(capsys, "--registry", built, "ui", "--export", str(out))
    assert code == 2 and "not empty" in err and "--force" in err and not (out / "index.html").exists()
    code, stdout, _ = pmr(capsys, "--registry", built, "ui", "--export", str(out), "--force", "--all-versions")
    assert code == 0 and "wrote 9 page(s)" in stdout
    assert (out / "models/churn/versions/1.html").is_file() and (out / "keep.txt").read_text() == "mine"


def test_the_export_opens_from_disk_in_chromium_with_no_network(tmp_path: Path) -> None:
    from tests.conftest import skip_unless_ci
    from tests.ui.conftest import CHROMIUM_ARGS, chromium_path

    path = chromium_path()
    if path is None:
        skip_unless_ci("no Chromium on this machine: `.ci/system-deps` installs Debian's `chromium`")
    from playwright.sync_api import sync_playwright

    from prefect_model_registry.registry.dashboard.export import export

    location = str(tmp_path / "registry")
    build(Registry.open(location))
    out = tmp_path / "site"
    export(location, out)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    asked: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1400})

            def files_only(route: Any) -> None:
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    asked.append(route.request.url)
                    route.abort()

            context.route("**/*", files_only)
            page = context.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto((out / "index.html").as_uri())
            page.fill("#filter", "churn")
            assert page.locator("#models-table tbody tr:visible").count() == 1
            page.click("text=churn")
            page.wait_for_function("window.pmrChart !== undefined")
            labels = page.evaluate("() => window.pmrChart.data.datasets.map(d => d.label)")
            assert labels == ["auc", "f1", EVIL]  # by default the metrics most versions have
            points = page.evaluate("() => window.pmrChart.getDatasetMeta(0).data.length")
            assert points == 4
            assert not page.locator("form").first.is_visible()  # forms that ask the server are hidden
            page.click("#versions-table thead th:text-is('auc')")
            order = page.locator("#versions-table tbody tr td:first-child").all_inner_texts()
            assert order == ["v1", "v3", "v2", "v4"]
            page.screenshot(path=str(OUTPUT / "export-model.png"), full_page=True)
            page.click("#versions-table >> text=v4")
            assert page.url.endswith("/models/churn/versions/4.html")
            assert "gate:drift" in page.inner_text("body")
        finally:
            browser.close()
    assert not dialogs and not asked


def test_the_model_page_is_bounded_then_shows_everything_on_demand(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "VERSION_ROWS", 2)
    monkeypatch.setattr(views, "CHART_VERSIONS", 3)
    monkeypatch.setattr(views, "TIMELINE_ROWS", 2)

    def table(page: str) -> list[str]:
        part = page[page.index('id="versions-table"') : page.index('id="timeline-table"')]
        return re.findall(r'<td data-sort="(\d+)">', part)

    page = get(client, "/models/churn?metric=auc")
    assert table(page) == ["4", "3"] and "Showing 2 of 4 versions (page 1 of 2)." in page
    assert 'href="?metric=auc&amp;vpage=2">older</a>' in page and 'href="?metric=auc&amp;rows=all"' in page
    assert chart(page)["versions"] == [2, 3, 4]  # the newest CHART_VERSIONS: the cost does not grow with age
    assert "The chart shows 3 of 4 versions (the newest)." in page
    older = get(client, "/models/churn?metric=auc&vpage=2")
    assert table(older) == ["2", "1"] and 'vpage=1">newer</a>' in older
    assert table(get(client, "/models/churn?vpage=99")) == ["2", "1"]  # clamped to the last page
    every = get(client, "/models/churn?metric=auc&rows=all&vpage=2")
    assert table(every) == ["4", "3", "2", "1"] and "Showing" not in every.split('id="timeline-table"')[0]
    assert chart(every)["versions"] == [1, 2, 3, 4] and 'id="chart-scope"' not in every
    assert "rows=all&amp;rows=all" not in get(client, "/models/churn?rows=all&rows=all")
    # A filter reads every version: the chart shows what it matches, oldest first.
    filtered = get(client, "/models/churn?where=auc>=0.84&sort=-auc")
    assert chart(filtered)["versions"] == [2, 4] and table(filtered) == ["4", "2"]
    assert "The chart shows 2 of 4 versions (those the filter matches)." in filtered
    # The timeline: the newest periods, then every one.
    periods = page[page.index('id="timeline-table"') :]
    assert periods.count('class="period ') == 2 and 'id="timeline-scope"' in periods
    assert 'href="?metric=auc&amp;periods=all"' in periods
    full = get(client, "/models/churn?periods=all")
    assert full.count('class="period ') > 2 and 'id="timeline-scope"' not in full


def test_the_last_change_is_the_newest_event_read_alone(built: str) -> None:
    reg = Registry.open(built)
    for name in reg.models():
        assert views.newest_event(reg, name, reg.state(name)) == reg.history(name)[-1]


def test_a_newest_event_that_is_not_the_one_the_state_follows_is_refused(built: str) -> None:
    from prefect_model_registry.registry import IntegrityError

    reg = Registry.open(built)
    state = reg.state("churn")
    with pytest.raises(IntegrityError, match=r"event 12 of churn .* `pmr verify`"):
        views.newest_event(reg, "churn", state.model_copy(update={"head_hash": "0" * 64}))
    with pytest.raises(IntegrityError, match="event 13 of churn"):
        views.newest_event(reg, "churn", state.model_copy(update={"seq": 13}))


def test_the_audit_page_shows_the_last_saved_verify_and_never_runs_verify(
    client: TestClient, built: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect_model_registry.registry.core import keys
    from prefect_model_registry.registry.maintenance import verify as verify_module

    assert "No saved check: run pmr verify --save" in text(get(client, "/audit"))
    code, out, _ = pmr(capsys, "--registry", built, "verify", "--save", "--json")
    assert code == 0, out
    store = Registry.open(built).store
    saved = json.loads(store.get(keys.VERIFY_RESULT).data)
    assert saved["report"] == json.loads(out) and saved["report"]["ok"] is True
    # verify ignores its own record: a second check finds nothing about it
    code, out, _ = pmr(capsys, "--registry", built, "verify", "--json")
    assert code == 0 and "maintenance/" not in out

    def no_verify(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a page load ran verify")

    monkeypatch.setattr(verify_module, "verify", no_verify)
    monkeypatch.setattr(verify_module._Model, "run", no_verify)
    shown = text(get(client, "/audit"))
    assert "Last integrity check OK : 0 error(s), 0 warning(s); 2 models, 5 versions" in shown
    assert saved["saved_at"][:10] in shown and "not re-run on this page" in shown
    # findings (free text from a tampered or hand-written record) are text, folded in a <details>
    finding = {"severity": "error", "kind": EVIL, "model": EVIL, "key": EVIL, "problem": EVIL}
    warning = {**finding, "severity": "warning"}
    record = {**saved, "report": {**saved["report"], "ok": False, "findings": [finding, warning]}}
    store.put(keys.VERIFY_RESULT, json.dumps(record).encode())
    page = get(client, "/audit")
    section = page[page.index('<section id="verify-result">') : page.index("</section>")]
    assert EVIL not in section and section.count(EVIL_HTML) == 8
    assert "PROBLEMS FOUND : 1 error(s), 1 warning(s)" in text(section)
    assert re.search(r"<details><summary>2 finding\(s\)</summary>\s*<table id=\"verify-findings\">", page)
    store.put(keys.VERIFY_RESULT, b"{not json")
    assert "maintenance/verify.json is unreadable (JSONDecodeError): run pmr verify --save again" in text(
        get(client, "/audit")
    )


def test_pmr_verify_save_is_for_a_check_of_every_model(built: str, capsys: pytest.CaptureFixture[str]) -> None:
    from prefect_model_registry.registry.core import keys

    for args in (["churn"], ["--repair"]):
        code, _, err = pmr(capsys, "--registry", built, "verify", "--save", *args)
        assert code != 0 and "--save records a check of every model" in err
    assert not Registry.open(built).store.exists(keys.VERIFY_RESULT)
    code, out, _ = pmr(capsys, "--registry", built, "verify", "--save")
    assert code == 0 and "saved to maintenance/verify.json" in out
