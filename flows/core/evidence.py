"""What a person sees: model cards, approval evidence, champion tables, the registry overview.

Every value that comes from the registry, a report or the data goes into Markdown through
``markdown`` (or ``markdown_code``): a description, a metric name or a
dataset value renders as the text it is, never as a link, an image, HTML or a heading in the card a reviewer reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from prefect_model_registry.registry import ModelVersion, Registry
from prefect_model_registry.registry.core.display import markdown, markdown_code
from prefect_model_registry.registry.settings import settings
from prefect_model_registry.validations.report import GateReport, format_value

_GATE_ORDER = ("data_quality", "drift", "metrics", "thresholds", "champion_challenger")
#: Reports that are not gates (shown in sections of their own).
_NOT_GATES = ("sweep", "drift_reference")


def artifact_key(*parts: object) -> str:
    """A Prefect artifact key (lowercase letters, digits and dashes only) from ``parts``."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", "-".join(map(str, parts)).lower())).strip("-")


def dashboard_link(name: str, version: int) -> str | None:
    """The version's page in the ``pmr ui`` dashboard (``PMR_DASHBOARD_URL``), None when no address is set.

    The name is URL-quoted, and so are parentheses in the address: the link is a Markdown link destination.
    """
    base = settings().dashboard_url
    if not base:
        return None
    base = base.replace("(", "%28").replace(")", "%29")
    return f"{base}/models/{quote(name, safe='')}/versions/{version}"


def _verdict(report: GateReport | None) -> str:
    if report is None:
        return "not run"
    if report.summary.get("checked") is False:
        return f"➖ not checked: {markdown(report.summary.get('why', ''))}"
    if report.passed:
        return "✅ passed"
    return f"❌ FAILED ({len(report.failed_checks)} of {len(report.checks)} checks)"


def gate_summary(reports: Mapping[str, GateReport]) -> str:
    """A Markdown table with one line per gate: verdict and the failing checks."""
    lines = ["| Gate | Verdict | Failed checks |", "|---|---|---|"]
    gates = [g for g in reports if g not in _NOT_GATES]
    for gate in sorted(gates, key=lambda g: (_GATE_ORDER.index(g) if g in _GATE_ORDER else 99, g)):
        report = reports[gate]
        failed = "; ".join(markdown(f"{c.name}: observed {c.observed}") for c in report.failed_checks[:5]) or "-"
        if len(report.failed_checks) > 5:  # every failed check is counted, as in the one-line reason
            failed += f"; and +{len(report.failed_checks) - 5} more"
        lines.append(f"| {markdown(gate)} | {_verdict(report)} | {failed} |")
    return "\n".join(lines)


def champion_rows(report: GateReport | None) -> list[dict[str, Any]]:
    """Rows ``metric | candidate | champion | delta`` from a champion/challenger report."""
    if report is None:
        return []
    candidate = report.summary.get("candidate", {})
    champion = report.summary.get("champion") or {}
    deltas = report.summary.get("deltas") or {}
    return [
        {
            "metric": metric,
            "candidate": format_value(value),
            "champion": format_value(champion[metric]) if metric in champion else "-",
            "delta": format_value(deltas[metric]) if metric in deltas else "-",
        }
        for metric, value in sorted(candidate.items())
    ]


def champion_markdown(report: GateReport | None) -> str:
    """The champion/challenger comparison as a Markdown table (or a note when there is no champion)."""
    rows = champion_rows(report)
    if not rows:
        return "_No comparison available._"
    note = "" if report and report.summary.get("champion") else "\n\n_No model in production yet: first version._"
    lines = ["| Metric | Candidate | Champion | Δ |", "|---|---|---|---|"]
    lines += [
        f"| {markdown(r['metric'])} | {markdown(r['candidate'])} | {markdown(r['champion'])} | {markdown(r['delta'])} |"
        for r in rows
    ]
    return "\n".join(lines) + note


def lineage_markdown(mv: ModelVersion) -> str:
    """Lineage of a version as a Markdown bullet list."""
    lin = mv.lineage
    items = [
        ("Dataset", markdown(lin.dataset_uri) if lin.dataset_uri else None),
        ("Dataset fingerprint", markdown(lin.dataset_fingerprint) if lin.dataset_fingerprint else None),
        (
            "Code version (the run's directory)",
            f"{markdown(lin.code_version)}{' (uncommitted changes)' if lin.code_dirty else ''}"
            if lin.code_version
            else None,
        ),
        ("Trainer", trainer_markdown(mv) or None),
        ("Suite", _check_markdown(lin.suite, lin.suite_sha256)),
        ("Thresholds", _check_markdown(lin.thresholds, lin.thresholds_sha256)),
        ("Run config", f"sha256 {markdown_code(lin.config_sha256)}" if lin.config_sha256 else None),
        (
            "Produced by",
            f"flow {markdown_code(lin.flow_name)} run {markdown_code(lin.flow_run_id)}" if lin.flow_run_id else None,
        ),
        ("Deployment", markdown(lin.deployment) if lin.deployment else None),
        ("Parent version", f"v{lin.parent_version}" if lin.parent_version else "none (first model)"),
        (
            "Python / packages",
            markdown(f"{lin.python_version}; " + ", ".join(f"{k} {v}" for k, v in lin.packages.items())),
        ),
        (
            "Artifact",
            f"sha256 `{mv.artifact.sha256[:16]}…`, {mv.artifact.size:,} bytes, {markdown(mv.artifact.format)}",
        ),
        ("Registered by", f"{markdown(mv.created_by)} at {mv.created_at.isoformat(timespec='seconds')}"),
    ]
    return "\n".join(f"- **{k}:** {v}" for k, v in items if v)


def trainer_markdown(mv: ModelVersion) -> str:
    """The trainer's code in one line: spec, file hash, distribution, its repository's commit; ``""`` if none."""
    lin = mv.lineage
    if not lin.trainer:
        return ""
    parts = [markdown_code(lin.trainer)]
    if lin.trainer_sha256:
        parts.append(f"file sha256 {markdown_code(lin.trainer_sha256)}")
    if lin.trainer_distribution:
        version = markdown(lin.trainer_distribution_version or "?")
        parts.append(f"from {markdown_code(lin.trainer_distribution)} {version}")
    if lin.trainer_commit:
        state = "uncommitted or untracked changes" if lin.trainer_dirty else "clean"
        parts.append(f"git commit {markdown_code(lin.trainer_commit)} ({state})")
    else:
        parts.append("not in a git repository")
    return ", ".join(parts)


def _check_markdown(ref: str | None, digest: str | None) -> str | None:
    if not ref and not digest:
        return None
    return ", ".join(
        ([markdown_code(ref)] if ref else []) + ([f"sha256 {markdown_code(digest)}"] if digest else ["not read"])
    )


def model_card(mv: ModelVersion, reports: Mapping[str, GateReport], stage: str) -> str:
    """A Markdown model card: what it is, how it scores, its gates and where it came from."""
    metrics = "\n".join(f"| {markdown(k)} | {markdown(format_value(v))} |" for k, v in sorted(mv.metrics.items()))
    params = "\n".join(f"| {markdown(k)} | {markdown_code(v)} |" for k, v in sorted(mv.params.items()))
    page = dashboard_link(mv.name, mv.version)
    return "\n\n".join(
        [
            f"# Model card: {markdown(mv.name)} v{mv.version}",
            f"**Stage:** {markdown(stage)}  \n**URI:** {markdown_code(mv.uri)}"
            + (f"  \n**Dashboard:** [{markdown(mv.name)} v{mv.version}]({page})" if page else "")
            + (f"  \n{markdown(mv.description)}" if mv.description else ""),
            "## Holdout metrics\n\n| Metric | Value |\n|---|---|\n" + metrics,
            "## Gates\n\n" + gate_summary(reports),
            "## Against the current production model\n\n" + champion_markdown(reports.get("champion_challenger")),
            *([sweep_markdown(reports["sweep"])] if "sweep" in reports else []),
            "## Parameters\n\n| Parameter | Value |\n|---|---|\n" + params,
            "## Lineage\n\n" + lineage_markdown(mv),
        ]
    )


def sweep_markdown(report: GateReport) -> str:
    """The sweep's candidates: how the winner was chosen, parameters and every holdout metric, the chosen one marked.

    ``how`` (validations/sweep.py) says whether the primary metric decided, or a tie on it was decided by the
    secondary metric or by candidate order; a report stored before it was recorded has none.
    """
    rows = [c.details for c in report.checks]
    names = sorted({m for row in rows for m in row.get("metrics", {})})
    head = "| Candidate | Parameters | " + " | ".join(markdown(n) for n in names) + " |"
    how = report.summary.get("how")
    lines = [
        f"## Sweep: {len(rows)} candidates, best on {markdown(report.summary.get('primary'))}",
        *([f"**Chosen:** {markdown(how)}"] if how else []),
        "",
        head,
    ]
    lines.append("|---|---|" + "---|" * len(names))
    for i, row in enumerate(rows, 1):
        params = ", ".join(f"{k}={v}" for k, v in row.get("params", {}).items())
        label = f"**{i} (chosen)**" if row.get("best") else str(i)
        values = " | ".join(markdown(format_value(row.get("metrics", {}).get(m))) for m in names)
        lines.append(f"| {label} | {markdown_code(params)} | {values} |")
    return "\n".join(lines)


def approval_description(
    mv: ModelVersion,
    reports: Mapping[str, GateReport],
    links: Mapping[str, str],
    note: str = "",
    stage: str = "production",
) -> str:
    """The Markdown shown in the approval dialog: everything a reviewer needs to decide, short enough to read there.

    Plain ✓/✗ marks rather than emoji: they render with any font (the dialog is also screenshotted headless).

    Args:
        mv: the version asking to move to ``stage``.
        reports: its gate reports by gate name.
        links: title -> where to read more: a URL (rendered as a link) or plain text (when the UI's address is
            unknown, e.g. the artifact's key).
        note: shown under the headline (e.g. why the last decision was refused): Markdown the caller built, with
            any stored or typed text in it escaped by :func:`prefect_model_registry.registry.core.display.markdown`.
        stage: the stage the decision is about.
    """

    def mark(report: GateReport) -> str:
        return "✓" if report.passed else "✗"

    gate_names = [g for g in reports if g not in _NOT_GATES]
    ordered = sorted(gate_names, key=lambda g: (_GATE_ORDER.index(g) if g in _GATE_ORDER else 99, g))
    dq = reports.get("data_quality")
    if dq is None:
        dq_line = "not run"
    else:
        counted = f"{len(dq.checks) - len(dq.failed_checks)} of {len(dq.checks)} checks met"
        rows_checked = markdown(dq.summary.get("rows", "?"))
        dq_line = f"{mark(dq)} {'passed' if dq.passed else 'FAILED'}: {counted} on {rows_checked} rows"
    nbsp = "\u00a0"  # keeps each mark on the line of its gate when the line wraps
    names = {"champion_challenger": "champion/challenger"}
    gates = [mark(reports[g]) + nbsp + names.get(g, markdown(g).replace("_", nbsp)) for g in ordered]
    gates_line = " · ".join(gates) or "none run"
    lin = mv.lineage
    trained = [markdown_code(lin.dataset_uri.rsplit("/", 1)[-1]) if lin.dataset_uri else "unknown data"]
    trained.append(f"parent v{lin.parent_version}" if lin.parent_version else "first version")
    trained.append(f"registered by {markdown(mv.created_by)}")
    facts = [f"**Data quality:** {dq_line}", f"**Gates:** {gates_line}", "**Trained on:** " + ", ".join(trained)]

    comparison = reports.get("champion_challenger")
    rows = champion_rows(comparison)
    if rows and comparison is not None and comparison.summary.get("champion"):
        primary = comparison.summary.get("primary")
        table = ["| Metric | Candidate | Champion | Δ |", "|---|---|---|---|"]
        table += [
            f"| {'**' + markdown(r['metric']) + '** (primary)' if r['metric'] == primary else markdown(r['metric'])} "
            f"| {markdown(r['candidate'])} | {markdown(r['champion'])} | {markdown(r['delta'])} |"
            for r in rows
        ]
        compared = "\n".join(table)
    else:
        compared = champion_markdown(comparison)
    failed = {g: r for g, r in reports.items() if not r.passed}
    page = dashboard_link(mv.name, mv.version)
    if page and "Dashboard" not in links:
        links = {"Dashboard": page, **links}
    what = {
        "Dashboard": "the version's page in pmr ui: every report, the diff, the model's history",
        "Model card": "metrics, parameters and every gate",
        "Lineage": "data, code, environment and the run",
        "Champion vs. challenger": "the table above as an artifact",
    }
    link_lines = [
        (f"- [{title}]({to})" if "://" in to else f"- {title}: {to}") + (f" ({what[title]})" if title in what else "")
        for title, to in links.items()
    ]
    parts = [
        f"## Approve **{markdown(mv.name)} v{mv.version}** for {markdown(stage)}?",
        note,
        "  \n".join(facts),
        "### Candidate vs. production model (same holdout)\n\n" + compared,
        ("### Failed checks\n\n" + gate_summary(failed)) if failed else "",
        ("### Evidence\n\n" + "\n".join(link_lines)) if link_lines else "",
    ]
    return "\n\n".join(p for p in parts if p)


def overview_rows(reg: Registry) -> list[dict[str, Any]]:
    """The registry overview as display rows: latest, production and staging versions, aliases."""
    return overview_table(reg)[0]


def overview_table(reg: Registry) -> tuple[list[dict[str, Any]], int, datetime | None]:
    """The overview's display rows, as of which event and when.

    Returns:
        The rows (one per model: latest, production and staging versions, aliases, its last change and ``events``,
        the length of its audit log), N and T: N the events of every model's log added up (each log counts its
        own; any event anywhere raises N), T the newest event's time (None for an empty registry).
    """
    found = reg.overview()
    rows = [
        {
            "model": r["name"],
            "latest": r["latest"],
            "production": f"v{r['production']}" if r["production"] else "-",
            "staging": ", ".join(f"v{v}" for v in r["staging"]) or "-",
            "aliases": ", ".join(f"{a}→v{v}" for a, v in r["aliases"].items()) or "-",
            "last change": r["updated_at"].isoformat(timespec="seconds") if r["updated_at"] else "-",
            "events": r["seq"],
        }
        for r in found
    ]
    times = [r["updated_at"] for r in found if r["updated_at"] is not None]
    return rows, sum(r["seq"] for r in found), max(times) if times else None


def as_of(events: int, newest: datetime | None) -> str:
    """``as of event N, time T``: how fresh an overview is."""
    return f"as of event {events}, time {newest.isoformat(timespec='seconds') if newest else '-'}"


def object_links(reg: Registry, mv: ModelVersion) -> dict[str, str]:
    """Where the version's ``manifest`` and ``artifact`` live in storage (s3:// or file:// URLs), by kind."""
    base = reg.store.uri if reg.store.uri.startswith("s3://") else f"file://{reg.store.uri}"
    return {
        "manifest": f"{base}/{reg.manifest_key(mv.name, mv.version)}",
        "artifact": f"{base}/{mv.artifact.key}",
    }
