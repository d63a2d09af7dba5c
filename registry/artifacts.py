"""Serialising models, and loading them only when their bytes are the ones registered.

scikit-learn models are stored with ``skops``, whose loader refuses types it was not told to trust: we trust
the scientific-Python stack and nothing else by default. Pickle and joblib files (from notebooks) are loaded
only after their SHA-256 matches the manifest.
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
#: Module prefixes whose types a skops file may hold without an explicit ``trusted=`` list.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.", "_codecs.")


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


def deserialize(data: bytes, fmt: str, *, trusted: Iterable[str] = ()) -> Any:
    """Turn verified artifact bytes back into an object.

    Args:
        data: bytes whose hash was already checked against the manifest.
        fmt: the manifest's artifact format.
        trusted: extra fully-qualified type names a skops file may contain.

    Raises:
        UntrustedArtifact: a skops file holds types outside the scientific stack and ``trusted``.

    """
    if fmt == "bytes":
        return data
    if fmt == "pickle":
        return pickle.loads(data)
    if fmt == "joblib":
        import joblib

        return joblib.load(io.BytesIO(data))
    import skops.io as sio

    extra = set(trusted)
    untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in extra and not t.startswith(TRUSTED_PREFIXES)]
    if untrusted:
        raise UntrustedArtifact(f"model holds untrusted types {untrusted}; pass trusted=[...] to load it anyway")
    return sio.loads(data, trusted=sio.get_untrusted_types(data=data))
