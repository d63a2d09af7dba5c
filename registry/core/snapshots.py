"""Training-data snapshots: the bytes a version was trained on, kept in the registry's own store.

A file at a dataset URI is overwritten (the nightly ``latest.csv``), moved or deleted; the fingerprint in the
lineage only proves that. So registration also stores the bytes as a content-addressed blob
(``blobs/sha256/<hex>``, the same layout as artifacts): the same data is stored once however many versions use
it, a snapshot is checked against its hash when read, and ``verify`` covers it like any blob. Above a size limit
(``PMR_SNAPSHOT_MAX_BYTES``, default 100 MiB) or when opted out, only the URI and fingerprint are kept and the
lineage says why.
"""

from __future__ import annotations

from prefect_model_registry.registry.core import keys
from prefect_model_registry.registry.core.transfer import Source
from prefect_model_registry.registry.errors import DatasetUnavailable, IntegrityError, InvalidMetadata, ObjectNotFound
from prefect_model_registry.registry.models import Lineage, ModelVersion, sha256
from prefect_model_registry.registry.settings import SNAPSHOT_MAX_BYTES, VARIABLES, settings
from prefect_model_registry.registry.store.base import ObjectStore

#: Environment variable holding the largest dataset (bytes) a registration keeps a copy of.
MAX_BYTES_ENV = SNAPSHOT_MAX_BYTES
DEFAULT_MAX_BYTES: int = VARIABLES[SNAPSHOT_MAX_BYTES].default  # 100 MiB


def max_bytes() -> int:
    """The snapshot size limit (``PMR_SNAPSHOT_MAX_BYTES``, default 100 MiB).

    Raises:
        InvalidMetadata: the variable is not a non-negative integer.

    """
    return settings().snapshot_max_bytes


def check_unset(lineage: Lineage) -> None:
    """Refuse a caller's lineage that already holds snapshot fields: only the registry sets them.

    Raises:
        InvalidMetadata: a snapshot field is set.

    """
    if lineage.dataset_snapshot or lineage.dataset_size is not None or lineage.dataset_snapshot_note:
        raise InvalidMetadata("the dataset snapshot fields of a lineage are set by the registry, not the caller")


def plan(
    lineage: Lineage, *, enabled: bool = True, dataset: Source | None = None, unreadable: str | None = None
) -> tuple[Lineage, Source | None]:
    """The lineage with its snapshot fields, and the bytes to store (None when nothing is kept).

    Args:
        lineage: the completed lineage.
        enabled: keep a snapshot at all.
        dataset: the dataset's bytes as read now (or handed over by a copy); None when they could not be read.
        unreadable: why they could not be read.

    The bytes are kept only if they still have the fingerprint the lineage recorded: a file that changed between
    training and registration is not the training data, and the lineage says so.
    """
    if not lineage.dataset_uri:
        return lineage, None
    if not enabled:
        return lineage.model_copy(update={"dataset_snapshot_note": "not kept: opted out for this registration"}), None
    limit = max_bytes()
    if dataset is None:
        return lineage.model_copy(update={"dataset_snapshot_note": f"not kept: {unreadable}"}), None
    if lineage.dataset_fingerprint and f"sha256:{dataset.digest}" != lineage.dataset_fingerprint:
        note = "not kept: the file changed after it was read for training (its fingerprint differs)"
        return lineage.model_copy(update={"dataset_snapshot_note": note}), None
    if dataset.size > limit:
        note = f"not kept: {dataset.size} bytes is above the {limit}-byte limit ({MAX_BYTES_ENV})"
        return lineage.model_copy(update={"dataset_snapshot_note": note, "dataset_size": dataset.size}), None
    fields = {"dataset_snapshot": dataset.digest, "dataset_size": dataset.size, "dataset_snapshot_note": None}
    if not lineage.dataset_fingerprint:
        fields["dataset_fingerprint"] = f"sha256:{dataset.digest}"
    return lineage.model_copy(update=fields), dataset


def digest_of(mv: ModelVersion) -> str:
    """The SHA-256 of ``mv``'s snapshot.

    Raises:
        DatasetUnavailable: no snapshot was kept (the lineage's note says why).

    """
    digest = mv.lineage.dataset_snapshot
    if not digest:
        why = mv.lineage.dataset_snapshot_note or "it was registered without one"
        raise DatasetUnavailable(f"{mv.uri} kept no snapshot of its training data: {why}")
    return digest


def read(store: ObjectStore, mv: ModelVersion) -> bytes:
    """The snapshot of ``mv``'s training data, hash-checked.

    Raises:
        DatasetUnavailable: no snapshot was kept (the lineage's note says why).
        IntegrityError: the snapshot is missing or altered.

    """
    digest = mv.lineage.dataset_snapshot
    if not digest:
        why = mv.lineage.dataset_snapshot_note or "it was registered without one"
        raise DatasetUnavailable(f"{mv.uri} kept no snapshot of its training data: {why}")
    try:
        data = store.get(keys.blob_key(digest)).data
    except ObjectNotFound:
        raise IntegrityError(f"the training-data snapshot of {mv.uri} is missing ({keys.blob_key(digest)})") from None
    if sha256(data) != digest:
        raise IntegrityError(f"the training-data snapshot of {mv.uri} is altered: sha256 does not match")
    return data
