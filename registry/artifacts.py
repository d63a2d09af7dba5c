"""Serialising models, and loading them only when their bytes are the ones registered and their types reviewed.

A hash check proves the bytes were not changed after registration, not that they are safe to load. So:

- skops artifacts load with skops' own default trusted types plus the *reviewed* types recorded in the manifest
  at registration. Registration reviews them: every type ``skops.io.get_untrusted_types`` reports must pass
  :func:`reviewable`, a project allow-list (the scientific stack) that excludes callables which run code or touch
  files (``builtins.eval``, ``exec``, ``__import__``, ``numpy.load`` …). Anything else is refused, naming the type,
  before any of the file's code can run.
- pickle and joblib run arbitrary code by design: they load only with an explicit ``allow_pickle=True``.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from registry.errors import IntegrityError, InvalidMetadata, UntrustedArtifact
from registry.models import sha256

FORMATS = ("skops", "pickle", "joblib", "bytes")

#: Module prefixes a reviewed skops type may come from.
ALLOWED_PREFIXES = ("sklearn.", "numpy.", "scipy.")
#: Single names outside those prefixes that are safe: ``functools.partial`` only binds arguments to another
#: callable, which skops rebuilds as a node of its own and which must pass this review too (scikit-learn's
#: ``HistGradientBoosting*`` with categorical features holds one).
ALLOWED_NAMES = frozenset({"functools.partial"})
#: Inside the allowed prefixes, names that read or write files, fetch data or run code.
DENIED_PREFIXES = (
    "numpy.load",
    "numpy.save",
    "numpy.fromfile",
    "numpy.tofile",
    "numpy.memmap",
    "numpy.genfromtxt",
    "numpy.fromregex",
    "numpy.DataSource",
    "numpy.lib.npyio",
    "numpy.lib.format",
    "numpy.lib._npyio",
    "numpy.lib._datasource",
    "numpy.ctypeslib",
    "numpy.f2py",
    "numpy.distutils",
    "numpy.testing",
    "scipy.io",
    "scipy._lib",
    "sklearn.datasets",
    "sklearn.externals",
    "sklearn.utils._testing",
    "sklearn.utils._show_versions",
)


def reviewable(type_name: str) -> bool:
    """Whether a type a skops file holds may be trusted once reviewed (see the module docstring)."""
    if type_name in ALLOWED_NAMES:
        return True
    return type_name.startswith(ALLOWED_PREFIXES) and not type_name.startswith(DENIED_PREFIXES)


def dump_model(model: Any) -> bytes:
    """Serialise a scikit-learn estimator or pipeline with skops."""
    import skops.io as sio

    return sio.dumps(model)


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


def _untrusted_types(data: bytes) -> list[str]:
    """The types of a skops file outside skops' defaults (reading its schema runs none of its code)."""
    import skops.io as sio

    try:
        return sorted(sio.get_untrusted_types(data=data))
    except Exception as exc:  # a file skops cannot even parse is not a model we can review
        raise UntrustedArtifact(f"not a readable skops file: {type(exc).__name__}: {exc}") from None


def review_types(data: bytes, fmt: str) -> list[str] | None:
    """Review a new artifact's types at registration: the list to record in its manifest.

    Returns:
        The non-default types a skops file holds, all of them reviewable; ``None`` for other formats.

    Raises:
        UntrustedArtifact: a type is not reviewable (named in the message); nothing should be written.

    """
    if fmt != "skops":
        return None
    types = _untrusted_types(data)
    refused = [t for t in types if not reviewable(t)]
    if refused:
        raise UntrustedArtifact(
            f"model holds types that may run code or touch files when loaded: {refused}; refusing to register it"
        )
    return types


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
        reviewed: the types recorded in the manifest at registration (``None`` for a manifest written before
            types were recorded: then each type must pass :func:`reviewable`).
        trusted: further type names the caller vouches for; each must still pass :func:`reviewable`.
        allow_pickle: load pickle and joblib artifacts, which can run any code.

    Raises:
        UntrustedArtifact: a skops file holds a type outside skops' defaults, the reviewed list and ``trusted``,
            or a type that no list may admit; or a pickle/joblib artifact without ``allow_pickle``.

    """
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

    extra = [t for t in trusted]
    never = [t for t in extra if not reviewable(t)]
    if never:
        raise UntrustedArtifact(f"types {never} can run code or touch files and are never trusted")
    types = _untrusted_types(data)
    admitted = set(extra) | (set(reviewed) if reviewed is not None else {t for t in types if reviewable(t)})
    refused = [t for t in types if t not in admitted or not reviewable(t)]
    if refused:
        raise UntrustedArtifact(f"model holds types that were not reviewed at registration: {refused}; not loading it")
    return sio.loads(data, trusted=types)
