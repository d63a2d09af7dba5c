"""Every object key the registry reads or writes, built in one place.

Layout (one bucket prefix or directory)::

    blobs/sha256/<hash>                            artifact and report bytes, content-addressed
    blobs/uses/<hash>                              when a registration last reused that blob (retention's grace)
    models/<name>/versions/<n:010d>.json           immutable manifest; its create-only write allocates n
    models/<name>/latest                           hint: a recent version number (a cache, checked before use)
    models/<name>/events/<seq:012d>.json           the hash-chained audit log (see registry.log)
    models/<name>/state.json                       snapshot of the replayed log (a cache)
    models/<name>/idempotency/<sha256(key)>.json   claim on an operation key (see registry.idempotency)
    models/<name>/reports/<n:010d>/<gate>.json     gate reports recorded by older releases (read only)
    models/<name>/index/<first:010d>.json          listing index segments and tail (see registry.index)
    models/<name>/log-index/<first:010d>.json      log index: events first..first+255 packed (see log_index)
    maintenance/verify.json                        the last `pmr verify --save` report and its time (the dashboard
                                                   shows it; outside blobs/ and models/, so verify never checks it)
"""

from __future__ import annotations

import hashlib

BLOBS = "blobs/sha256/"
MODELS = "models/"
#: The last ``pmr verify --save`` result: a plain overwrite, read by the dashboard's audit page.
VERIFY_RESULT = "maintenance/verify.json"


def blob_key(digest: str) -> str:
    """Key of the content-addressed blob with SHA-256 ``digest``."""
    return f"{BLOBS}{digest}"


def blob_use_key(digest: str) -> str:
    """Key of the marker a registration writes when it reuses the blob ``digest`` (retention reads its age)."""
    return f"blobs/uses/{digest}"


def model_prefix(name: str) -> str:
    """Key prefix of everything that belongs to model ``name``."""
    return f"{MODELS}{name}/"


def versions_prefix(name: str) -> str:
    """Key prefix of a model's manifests."""
    return f"{model_prefix(name)}versions/"


def manifest_key(name: str, version: int) -> str:
    """Key of the manifest of ``name`` version ``version``."""
    return f"{versions_prefix(name)}{version:010d}.json"


def hint_key(name: str) -> str:
    """Key of the ``latest`` hint."""
    return f"{model_prefix(name)}latest"


def events_prefix(name: str) -> str:
    """Key prefix of a model's events."""
    return f"{model_prefix(name)}events/"


def event_key(name: str, seq: int) -> str:
    """Key of event ``seq`` (zero-padded, so listing order is log order)."""
    return f"{events_prefix(name)}{seq:012d}.json"


def state_key(name: str) -> str:
    """Key of the model's state snapshot."""
    return f"{model_prefix(name)}state.json"


def claims_prefix(name: str) -> str:
    """Key prefix of a model's operation-key claims."""
    return f"{model_prefix(name)}idempotency/"


def claim_key(name: str, op_key: str) -> str:
    """Key of the claim on operation key ``op_key`` (hashed: keys are free text)."""
    return f"{claims_prefix(name)}{hashlib.sha256(op_key.encode()).hexdigest()}.json"


def legacy_reports_prefix(name: str, version: int) -> str:
    """Where releases before operation keys stored reports recorded after registration."""
    return f"{model_prefix(name)}reports/{version:010d}/"


def parse_number(key: str, prefix: str, suffix: str = ".json") -> int | None:
    """The number in ``<prefix><digits><suffix>``, or None when ``key`` has another shape."""
    if not key.startswith(prefix) or not key.endswith(suffix):
        return None
    body = key[len(prefix) : len(key) - len(suffix)]
    return int(body) if body.isascii() and body.isdigit() else None
