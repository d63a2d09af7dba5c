"""Prefect artifacts and events: what the UI shows and what automations can hang on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from prefect_model_registry.flows.core import evidence
from prefect_model_registry.registry import ModelVersion, Registry
from prefect_model_registry.validations.report import GateReport

#: Fixed key: every run adds a version to the same artifact, so its history shows in the UI.
OVERVIEW_KEY = "registry-overview"


def emit(kind: str, model: str, version: int | None, **payload: Any) -> None:
    """Emit ``model.<kind>`` (registered, approved, rejected, promoted, archived, rolled-back, gate-failed)."""
    resource = {"prefect.resource.id": f"pmr.model.{model}", "prefect.resource.name": model, "pmr.model": model}
    if version is not None:
        resource["pmr.version"] = str(version)
    emit_event(event=f"model.{kind}", resource=resource, payload={"model": model, "version": version, **payload})


def overview(reg: Registry) -> None:
    """Publish the registry overview table (all models, production and staging versions)."""
    rows = evidence.overview_rows(reg)
    create_table_artifact(rows, key=OVERVIEW_KEY, description=f"Models in {reg.store.uri}")


def data_quality(model: str, report: GateReport) -> None:
    """Publish the data-quality report as Markdown."""
    create_markdown_artifact(
        report.to_markdown(), key=evidence.artifact_key(model, "data-quality"), description="Data-quality gate"
    )


def version_evidence(reg: Registry, mv: ModelVersion, reports: Mapping[str, GateReport], stage: str) -> dict[str, str]:
    """Publish the model card, the lineage, the champion table and links to storage.

    Returns:
        title -> where a reviewer reads it: the artifact's page in the Prefect UI, or (when the UI's address is
        unknown: no ``PREFECT_UI_URL`` and no API URL to derive it from) the artifact's key as plain text.
    """
    from prefect.settings import PREFECT_UI_URL

    ui = (PREFECT_UI_URL.value() or "").rstrip("/")
    keys = {
        "Model card": evidence.artifact_key(mv.name, "model-card"),
        "Lineage": evidence.artifact_key(mv.name, "lineage"),
        "Champion vs. challenger": evidence.artifact_key(mv.name, "champion-challenger"),
    }
    ids = {
        "Model card": create_markdown_artifact(
            evidence.model_card(mv, reports, stage), key=keys["Model card"], description=f"{mv.name} v{mv.version}"
        ),
        "Lineage": create_markdown_artifact(
            f"# Lineage: {mv.name} v{mv.version}\n\n" + evidence.lineage_markdown(mv),
            key=keys["Lineage"],
            description=f"{mv.name} v{mv.version}: data, code, environment and the run that produced it",
        ),
    }
    rows = evidence.champion_rows(reports.get("champion_challenger"))
    if rows:
        ids["Champion vs. challenger"] = create_table_artifact(
            rows,
            key=keys["Champion vs. challenger"],
            description=f"{mv.name} v{mv.version} against the production model, same holdout",
        )
    for kind, url in evidence.object_links(reg, mv).items():
        create_link_artifact(url, link_text=f"{mv.name} v{mv.version} {kind}", key=evidence.artifact_key(mv.name, kind))
    return {
        title: f"{ui}/artifacts/artifact/{artifact_id}" if ui else f"artifact `{keys[title]}` in the Prefect UI"
        for title, artifact_id in ids.items()
    }
