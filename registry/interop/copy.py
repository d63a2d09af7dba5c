"""``pmr copy``: a version from one registry into another (dev to prod), verified by hash, with its lineage.

What travels: the artifact bytes (their skops types reviewed again by the target, as on any registration, from
the zip directory and schema alone: ranged reads on S3),
metrics, params, the current description and tags, the signature, the full lineage, every gate report (so a
failed blocking gate still blocks in the target) and the training-data snapshot when the source kept one.
``lineage.copied_from`` records the source (its location, the version's URI and the SHA-256 of its manifest).

What does not: stages, aliases and approvals. The target registry's own lifecycle and approval policy decide
those; a copy into prod starts at stage ``none`` and is reviewed there like any new version.

The bytes never pass through memory whole. Within one S3 endpoint the server copies them (boto3's managed copy,
multipart above ``PMR_MULTIPART_THRESHOLD``), naming the source object's ETag so that what lands is the object
reviewed; the copy is then checked without reading it back: same size, and the same ETag as the source (equal
ETags are equal MD5s of equal parts), else it is read back and hashed. Between endpoints or backends the bytes
stream through a temporary file, hashed on the way in (a corrupt source is refused, nothing written) and on the
way out. A server-side copy does not re-hash the source: the source's ``pmr verify`` does, and every load
checks the hash.

A copy carries an operation key derived from the source version, so running it again (after a crash at any
point, or on purpose) returns the version the first run made instead of a second one.
"""

from __future__ import annotations

from prefect_model_registry.registry.core import keys
from prefect_model_registry.registry.core.transfer import ProgressCallback, Source
from prefect_model_registry.registry.errors import IntegrityError
from prefect_model_registry.registry.models import ModelVersion, VersionInfo, sha256
from prefect_model_registry.registry.names import check_model_name
from prefect_model_registry.registry.registry import Registry


def source_ref(source: Registry, mv: ModelVersion) -> str:
    """What ``copied_from`` records: ``<source location>#<uri>@sha256:<manifest hash>``."""
    return f"{source.store.uri}#{mv.uri}@sha256:{sha256(mv.to_bytes())}"


def copy_version(
    source: Registry,
    uri: str,
    target: Registry,
    *,
    name: str | None = None,
    actor: str | None = None,
    progress: ProgressCallback | None = None,
) -> ModelVersion:
    """Copy the version at ``uri`` in ``source`` into ``target`` (as ``name``, default the same name).

    Returns:
        The version in ``target`` (the one an earlier run made, when run again).

    Raises:
        ModelNotFound, VersionNotFound, VersionDeleted, AliasNotFound: nothing to copy at ``uri``.
        IntegrityError: the source bytes do not match their hash, or the copy does not match the source.

    """
    mv = source.resolve(uri)
    if mv.version in source.state(mv.name).deleted:
        source.load_bytes(mv.uri)  # raises VersionDeleted, as loading it would
    name = check_model_name(name) if name is not None else mv.name
    current = source.view(mv.name, mv.version)
    reports = source.reports(mv.name, mv.version)
    if source.store.size(mv.artifact.key) != mv.artifact.size:
        raise IntegrityError(f"artifact of {mv.uri} is missing from the store or has the wrong size")
    dataset: Source | None = None
    if mv.lineage.dataset_snapshot:
        digest = mv.lineage.dataset_snapshot
        if source.store.exists(keys.blob_key(digest)):
            dataset = Source.of_blob(source.store, keys.blob_key(digest), digest, mv.lineage.dataset_size or 0)
    origin = source_ref(source, mv)
    lineage = mv.lineage.model_copy(
        update={"dataset_snapshot": None, "dataset_size": None, "dataset_snapshot_note": None, "copied_from": origin}
    )
    info = VersionInfo(
        metrics=current.metrics,
        params=current.params,
        tags=current.tags,
        description=current.description,
        lineage=lineage,
        reports=reports,
        signature=current.signature,
    )
    copied = target.register(
        name,
        Source.of_blob(source.store, mv.artifact.key, mv.artifact.sha256, mv.artifact.size),
        info,
        fmt=mv.artifact.format,
        actor=actor,
        operation_key=f"copy:{origin}",
        allow_missing_dataset=True,  # the source's fingerprint is kept; the file need not be readable here
        dataset_bytes=dataset,  # without a source snapshot, the target tries the dataset URI (fingerprint-checked)
        progress=progress,
    )
    if copied.artifact.sha256 != mv.artifact.sha256:
        raise IntegrityError(f"the copy {copied.uri} does not hold the bytes of {mv.uri}")
    if target.store.size(copied.artifact.key) != mv.artifact.size:
        raise IntegrityError(f"the copy {copied.uri} is missing from the target or has the wrong size")
    return copied
