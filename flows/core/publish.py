"""Prefect artifacts and events: what the UI shows and what automations can hang on."""

from __future__ import annotations

import contextvars
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, cast
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.events import emit_event

from prefect_model_registry.flows.core import evidence
from prefect_model_registry.flows.core.events import in_prefect_run
from prefect_model_registry.registry import ModelVersion, Registry
from prefect_model_registry.validations.report import GateReport

#: Fixed key: every run adds a version to the same artifact, so its history shows in the UI.
OVERVIEW_KEY = "registry-overview"


#: What the overview artifact last showed, by registry: (N, T) of "as of event N, time T".
_published: dict[str, tuple[int, Any]] = {}
_published_lock = threading.Lock()


def published(uri: str, as_of: tuple[int, Any]) -> None:
    """Note that the overview of the registry at ``uri`` was just published ``as_of`` (N, T)."""
    with _published_lock:
        _published[uri] = as_of


def already_published(uri: str, as_of: tuple[int, Any]) -> bool:
    """Whether the overview of ``uri`` was last published as of this very event."""
    with _published_lock:
        return _published.get(uri) == as_of


def emit(kind: str, model: str, version: int | None, **payload: Any) -> None:
    """Emit ``model.<kind>`` (registered, approved, rejected, promoted, archived, rolled-back, gate-failed)."""
    resource = {"prefect.resource.id": f"pmr.model.{model}", "prefect.resource.name": model, "pmr.model": model}
    if version is not None:
        resource["pmr.version"] = str(version)
    emit_event(event=f"model.{kind}", resource=resource, payload={"model": model, "version": version, **payload})


def overview(reg: Registry, *, skip_unchanged: bool = False) -> None:
    """Publish the registry overview table (all models, production and staging versions).

    Its description says how fresh it is: "as of event N, time T", N the events of every model's log added up,
    T the newest one's time (see :func:`evidence.overview_table`). Besides the flows' own calls, the overview is
    republished in the background after every registry event this process sees (``freshness``).

    Args:
        reg: the registry.
        skip_unchanged: publish nothing when this process last published this registry's overview as of the same
            event (the background refresh after a flow's own call).
    """
    rows, events, newest = evidence.overview_table(reg)
    if skip_unchanged and already_published(reg.store.uri, (events, newest)):
        return
    description = f"Models in {reg.store.uri}, {evidence.as_of(events, newest)}"
    if in_prefect_run():
        create_table_artifact(rows, key=OVERVIEW_KEY, description=description)
    else:
        # The background refresh, outside any run: straight to the API. Prefect's helper warns there, and its
        # client queues a prefect.artifact.created event that a `pmr` command, exiting just after, would leave to
        # Prefect's exit-time drain (which warns on stderr about the items it still holds).
        from prefect import get_client
        from prefect.client.schemas.actions import ArtifactCreate

        artifact = ArtifactCreate(type="table", key=OVERVIEW_KEY, description=description, data=json.dumps(rows))
        with get_client(sync_client=True) as client:
            client.request("POST", "/artifacts/", json=artifact.model_dump(mode="json", exclude_unset=True))
    published(reg.store.uri, (events, newest))


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


#: A model at least this large shows its upload as a progress artifact in the run.
UPLOAD_PROGRESS_MIN_BYTES = 8 * 1024 * 1024


class UploadProgress:
    """A registry ``progress`` callback that shows a large model's upload as a Prefect progress artifact.

    The artifact (key ``<model>-upload``) is created on the first ``uploading`` call for at least
    :data:`UPLOAD_PROGRESS_MIN_BYTES`, then updated when the upload has moved 5 % further or a second has passed
    since the last update, and at 100 %. The store calls back from its transfer threads: the run's context is
    captured here, so the artifact belongs to the task run that made this object. The artifact is a courtesy:
    if Prefect's API refuses it, a warning is logged once and the registration goes on without it.
    """

    def __init__(self, model: str, *, min_bytes: int = UPLOAD_PROGRESS_MIN_BYTES, interval_s: float = 1.0) -> None:
        self.model, self.min_bytes, self.interval_s = model, min_bytes, interval_s
        self.artifact_id: UUID | None = None
        self.shown = -1.0
        self.failed = False
        self._last = 0.0
        self._lock = threading.Lock()
        self._context = contextvars.copy_context()

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Take a ``(stage, bytes done, bytes in total)`` report; only ``uploading`` is shown."""
        if stage != "uploading" or total < self.min_bytes or self.failed:
            return
        percent = round(min(100.0, 100.0 * done / total), 1)
        with self._lock:
            now = time.monotonic()
            due = percent >= 100.0 or percent - self.shown >= 5.0 or now - self._last >= self.interval_s
            if self.failed or percent <= self.shown or (self.artifact_id is not None and not due):
                return
            try:
                self._context.run(self._show, percent, total)
            except Exception as exc:  # never fail a registration over its progress display
                self.failed = True
                self._context.run(_warn, f"upload progress artifact of {self.model} not updated: {exc}")
                return
            self.shown, self._last = percent, now

    def _show(self, percent: float, total: int) -> None:
        if self.artifact_id is None:
            created = create_progress_artifact(
                percent,
                key=evidence.artifact_key(self.model, "upload"),
                description=f"Uploading {self.model} ({total / 1024**2:.1f} MiB) to the registry",
            )
            self.artifact_id = cast(UUID, created)  # called from sync code: the UUID, not a coroutine
        else:
            update_progress_artifact(self.artifact_id, percent)


def _warn(message: str) -> None:
    """A warning in the run's log (the plain logger outside a run)."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        get_run_logger().warning(message)
    except MissingContextError:
        logging.getLogger(__name__).warning(message)
