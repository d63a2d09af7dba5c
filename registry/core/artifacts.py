"""Serialising models, and loading them only when their bytes are the ones registered and what they name reviewed.

A hash check proves the bytes were not changed after registration, not that they are safe to load. So:

- A skops artifact is reviewed before skops reads any of it, at registration (``register``, ``pmr copy``, the
  MLflow import: all go through :meth:`registry.Registry.register`), by ``verify`` and on every load
  (``skops_review``): caps on the work its zip and schema may cause, then every node of its schema
  against the reviewed list (``trusted_types``): each name exact, listed for the node kind that uses
  it, and resolving to an object of that very name. Anything else is refused, naming it, before any of the file's
  code can run. The names outside skops' defaults are recorded in the manifest (``artifact.trusted_types``).
- pickle and joblib run arbitrary code by design: they load only with an explicit ``allow_pickle=True``.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from prefect_model_registry.registry.errors import IntegrityError, InvalidMetadata, UntrustedArtifact
from prefect_model_registry.registry.models import sha256

FORMATS = ("skops", "pickle", "joblib", "bytes")


def reviewable(type_name: str) -> bool:
    """Whether a skops file may name ``type_name`` as some node kind (skops' defaults or the reviewed list).

    Exact names only; a listed name must also resolve to an object of that very name (see
    ``trusted_types``). Whether a given file may use it also depends on the node kind that does.
    """
    from prefect_model_registry.registry.core import trusted_types

    kinds = trusted_types.allowed_kinds(type_name) - trusted_types.UNNAMED_KINDS
    return any(trusted_types.admit(type_name, kind) is None for kind in kinds)


def dump_model(model: Any) -> bytes:
    """Serialise a scikit-learn estimator or pipeline with skops."""
    import skops.io as sio

    return sio.dumps(model)


def dump_model_to(model: Any, path: Path) -> None:
    """Serialise a scikit-learn estimator or pipeline with skops into the file ``path``."""
    import skops.io as sio

    sio.dump(model, path)


def format_for(path: Path) -> str:
    """Guess an artifact format from a file suffix (``.skops``, ``.pkl``, ``.joblib``, else bytes)."""
    suffix = path.suffix.lower()
    return {".skops": "skops", ".pkl": "pickle", ".pickle": "pickle", ".joblib": "joblib"}.get(suffix, "bytes")


def check_format(fmt: str) -> str:
    """Return ``fmt`` if it is a known artifact format."""
    if fmt not in FORMATS:
        raise InvalidMetadata(f"unknown artifact format {fmt!r}; use one of {', '.join(FORMATS)}")
    return fmt


def verify_bytes(data: bytes, expected_sha256: str, what: str) -> None:
    """Raise :class:`IntegrityError` unless ``data`` hashes to ``expected_sha256``."""
    actual = sha256(data)
    if actual != expected_sha256:
        raise IntegrityError(f"{what} is corrupt: sha256 {actual[:12]}… != registered {expected_sha256[:12]}…")


def review_types(data: bytes | BinaryIO, fmt: str) -> list[str] | None:
    """Review a new artifact at registration: the list of names to record in its manifest.

    Returns:
        The names a skops file uses outside skops' defaults, all of them admitted; ``None`` for other formats.

    Raises:
        UntrustedType: a name is not admitted as the node kind using it (each named); nothing should be written.
        ArtifactCapExceeded: the file exceeds a cap of ``skops_review`` (named, with its setting).
        ArtifactRefused: not a skops file the review can read.

    """
    if fmt != "skops":
        return None
    from prefect_model_registry.registry.core import skops_review

    return skops_review.review(data, action="refusing to register it").non_default()


def deserialize(
    data: bytes,
    fmt: str,
    *,
    reviewed: Iterable[str] | None = None,
    trusted: Iterable[str] = (),
    allow_pickle: bool = False,
) -> Any:
    """Turn verified artifact bytes back into an object.

    Args:
        data: bytes whose hash was already checked against the manifest.
        fmt: the manifest's artifact format.
        reviewed: the names recorded in the manifest at registration. Informative only: the review at every load
            decides, against the committed list, so an edited manifest admits nothing.
        trusted: classes of scikit-learn, NumPy or SciPy the caller vouches for, by exact name; each must be the
            class its name says and is admitted only as an instance (see ``check_extra``).
        allow_pickle: load pickle and joblib artifacts, which can run any code.

    Raises:
        UntrustedType: a skops file names something not admitted as the node kind using it, or ``trusted`` names
            something that is never trusted.
        ArtifactCapExceeded, ArtifactRefused: see :func:`prefect_model_registry.registry.core.skops_review.review`.
        UntrustedArtifact: a pickle/joblib artifact without ``allow_pickle``.

    """
    del reviewed  # kept for callers; see Args
    if fmt == "bytes":
        return data
    if fmt in ("pickle", "joblib"):
        if not allow_pickle:
            raise UntrustedArtifact(
                f"{fmt} artifacts can run arbitrary code when loaded; pass allow_pickle=True "
                "(pmr: --allow-pickle) only if you trust whoever registered it"
            )
        if fmt == "pickle":
            return pickle.loads(data)
        import joblib

        return joblib.load(io.BytesIO(data))
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    from prefect_model_registry.registry.core import skops_review

    found = skops_review.review(data, extra=trusted)
    try:
        # Every name was checked for the kind of node using it; skops' own audit runs again on the same bytes.
        return sio.loads(data, trusted=found.names())
    except UntrustedTypesFoundException as exc:  # skops saw a name the review did not: refuse, never widen
        raise UntrustedArtifact(f"skops refused what the review admitted: {exc}; not loading it") from None


def deserialize_file(path: Path, fmt: str, *, trusted: Iterable[str] = (), allow_pickle: bool = False) -> Any:
    """:func:`deserialize` from a verified file, without reading it into memory first (large models).

    Raises:
        As :func:`deserialize`.

    """
    if fmt == "bytes":
        return path.read_bytes()
    if fmt in ("pickle", "joblib"):
        if not allow_pickle:
            return deserialize(b"", fmt, allow_pickle=False)  # raises the refusal
        if fmt == "pickle":
            with open(path, "rb") as fh:
                return pickle.load(fh)
        import joblib

        return joblib.load(path)
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    from prefect_model_registry.registry.core import skops_review

    with open(path, "rb") as fh:
        found = skops_review.review(fh, extra=trusted)
    try:
        return sio.load(path, trusted=found.names())
    except UntrustedTypesFoundException as exc:
        raise UntrustedArtifact(f"skops refused what the review admitted: {exc}; not loading it") from None
