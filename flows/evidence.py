"""What a person sees: model cards, approval evidence, champion tables, the registry overview."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from registry import ModelVersion, Registry
from validations.report import GateReport, format_value

_GATE_ORDER = ("data_quality", "drift", "thresholds", "champion_challenger")


def artifact_key(*parts: object) -> str:
    """A Prefect artifact key (lowercase letters, digits and dashes only) from ``parts``."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", "-".join(map(str, parts)).lower())).strip("-")


def _verdict(report: GateReport | None) -> str:
    if report is None:
        return "not run"
    if report.passed:
        return "✅ passed"
    return f"❌ FAILED ({len(report.failed_checks)} of {len(report.checks)} checks)"


def gate_summary(reports: Mapping[str, GateReport]) -> str:
    """A Markdown table with one line per gate: verdict and the failing checks."""
    lines = ["| Gate | Verdict | Failed checks |", "|---|---|---|"]
    for gate in sorted(reports, key=lambda g: (_GATE_ORDER.index(g) if g in _GATE_ORDER else 99, g)):
        report = reports[gate]
        failed = "; ".join(f"{c.name}: observed {c.observed}" for c in report.failed_checks[:5]) or "-"
        failed = failed.replace("|", "\\|")
        lines.append(f"| {gate} | {_verdict(report)} | {failed} |")
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
    lines += [f"| {r['metric']} | {r['candidate']} | {r['champion']} | {r['delta']} |" for r in rows]
    return "\n".join(lines) + note


def lineage_markdown(mv: ModelVersion) -> str:
    """Lineage of a version as a Markdown bullet list."""
    lin = mv.lineage
    items = [
        ("Dataset", lin.dataset_uri),
        ("Dataset fingerprint", lin.dataset_fingerprint),
        (
            "Code version",
            f"{lin.code_version}{' (uncommitted changes)' if lin.code_dirty else ''}" if lin.code_version else None,
        ),
        ("Produced by", f"flow `{lin.flow_name}` run `{lin.flow_run_id}`" if lin.flow_run_id else None),
        ("Deployment", lin.deployment),
        ("Parent version", f"v{lin.parent_version}" if lin.parent_version else "none (first model)"),
        (
            "Python / packages",
            f"{lin.python_version}; " + ", ".join(f"{k} {v}" for k, v in lin.packages.items()),
        ),
        (
            "Artifact",
            f"sha256 `{mv.artifact.sha256[:16]}…`, {mv.artifact.size:,} bytes, {mv.artifact.format}",
        ),
        ("Registered by", f"{mv.created_by} at {mv.created_at.isoformat(timespec='seconds')}"),
    ]
    return "\n".join(f"- **{k}:** {v}" for k, v in items if v)


def model_card(mv: ModelVersion, reports: Mapping[str, GateReport], stage: str) -> str:
    """A Markdown model card: what it is, how it scores, its gates and where it came from."""
    metrics = "\n".join(f"| {k} | {format_value(v)} |" for k, v in sorted(mv.metrics.items()))
    params = "\n".join(f"| {k} | `{v}` |" for k, v in sorted(mv.params.items()))
    return "\n\n".join(
        [
            f"# Model card: {mv.name} v{mv.version}",
            f"**Stage:** {stage}  \n**URI:** `{mv.uri}`" + (f"  \n{mv.description}" if mv.description else ""),
            "## Holdout metrics\n\n| Metric | Value |\n|---|---|\n" + metrics,
            "## Gates\n\n" + gate_summary(reports),
            "## Against the current production model\n\n" + champion_markdown(reports.get("champion_challenger")),
            "## Parameters\n\n| Parameter | Value |\n|---|---|\n" + params,
            "## Lineage\n\n" + lineage_markdown(mv),
        ]
    )


def approval_description(
    mv: ModelVersion,
    reports: Mapping[str, GateReport],
    links: Mapping[str, str],
    note: str = "",
    stage: str = "production",
) -> str:
    """The Markdown shown in the approval dialog: everything a reviewer needs to decide, short enough to read there.

    Args:
        mv: the version asking to move to ``stage``.
        reports: its gate reports by gate name.
        links: title -> where to read more: a URL (rendered as a link) or plain text (when the UI's address is
            unknown, e.g. the artifact's key).
        note: shown under the headline (e.g. why the last decision was refused).
        stage: the stage the decision is about.
    """
    dq = reports.get("data_quality")
    if dq is None:
        dq_line = "not run"
    else:
        checked = f"{dq.summary.get('evaluated', len(dq.checks))} checks on {dq.summary.get('rows', '?')} rows"
        dq_line = f"{_verdict(dq)}, {checked}" if dq.passed else f"{_verdict(dq)} on {dq.summary.get('rows', '?')} rows"
    failed = [gate for gate, report in reports.items() if not report.passed]
    gates_line = "✅ all passed" if not failed else "❌ failed: " + ", ".join(failed)
    lin = mv.lineage
    trained = [f"`{lin.dataset_uri.rsplit('/', 1)[-1]}`" if lin.dataset_uri else None]
    trained.append(f"parent v{lin.parent_version}" if lin.parent_version else "first version")
    trained.append(f"registered by {mv.created_by}")
    facts = [
        f"**Data quality:** {dq_line}",
        f"**Gates:** {gates_line}",
        "**Trained on:** " + ", ".join(t for t in trained if t),
    ]
    link_lines = [f"- [{title}]({to})" if "://" in to else f"- {title}: {to}" for title, to in links.items()]
    parts = [
        f"## Approve **{mv.name} v{mv.version}** for {stage}?",
        note,
        "  \n".join(facts),
        "### Candidate vs. production model (same holdout)\n\n" + champion_markdown(reports.get("champion_challenger")),
        "### Gates\n\n" + gate_summary(reports),
        ("### Evidence\n\n" + "\n".join(link_lines)) if link_lines else "",
        "Switch **Approve this version** on to promote it; leave it off to reject it (then a comment is required). "
        "Your name and comment go into the registry's audit log.",
    ]
    return "\n\n".join(p for p in parts if p)


def overview_rows(reg: Registry) -> list[dict[str, Any]]:
    """One row per model: latest, production and staging versions, aliases."""
    rows = []
    for name in reg.models():
        state = reg.state(name)
        rows.append(
            {
                "model": name,
                "latest": reg.latest_version(name),
                "production": f"v{state.production}" if state.production else "-",
                "staging": ", ".join(f"v{v}" for v in state.version_in("staging")) or "-",
                "aliases": ", ".join(f"{a}→v{v}" for a, v in sorted(state.aliases.items())) or "-",
                "last change": state.updated_at.isoformat(timespec="seconds") if state.updated_at else "-",
            }
        )
    return rows


def object_links(reg: Registry, mv: ModelVersion) -> dict[str, str]:
    """Where the version's manifest and artifact live in storage (s3:// or file:// URLs)."""
    base = reg.store.uri if reg.store.uri.startswith("s3://") else f"file://{reg.store.uri}"
    return {
        f"{mv.name} v{mv.version} manifest": f"{base}/models/{mv.name}/versions/{mv.version:010d}.json",
        f"{mv.name} v{mv.version} artifact": f"{base}/{mv.artifact.key}",
    }
