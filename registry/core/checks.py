"""Total input checks: every writer calls these before its first write, so bad input writes nothing.

Each check raises a typed error (:class:`InvalidMetadata`, :class:`InvalidName` or :class:`InvalidURI`) for any
value it cannot store faithfully: lone surrogates (not encodable as UTF-8), non-string keys at any depth (JSON
would silently turn ``{1: …}`` into ``{"1": …}``), NaN and infinities, and types JSON has no form for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sized
from typing import Any

from prefect_model_registry.registry.errors import InvalidMetadata, InvalidName, InvalidURI, MetadataTooLarge
from prefect_model_registry.registry.models import VersionInfo
from prefect_model_registry.registry.settings import (
    MAX_ENTRIES,
    MAX_EVENT_BYTES,
    MAX_MANIFEST_BYTES,
    VARIABLES,
    settings,
)

#: Operation keys and texts longer than this are refused (they are stored in every event).
MAX_KEY_LEN = 512
MAX_TEXT_LEN = 100_000
MAX_VERSION = 9_999_999_999  # manifests are named with 10 digits
_MAX_DEPTH = 32

#: Limits on what one record may hold, with the environment variable that sets each (defaults; the values are
#: read by :mod:`prefect_model_registry.registry.settings`). A manifest and every event are read whole by listings
#: and ``history``: without them one caller could make every later read slow.
LIMITS = {
    MAX_MANIFEST_BYTES: VARIABLES[MAX_MANIFEST_BYTES].default,  # a version's manifest (JSON as stored)
    MAX_EVENT_BYTES: VARIABLES[MAX_EVENT_BYTES].default,  # one audit event (JSON as stored)
    MAX_ENTRIES: VARIABLES[MAX_ENTRIES].default,  # tags, params (top-level keys) and metrics of a version, each
}


def limit(setting: str) -> int:
    """The limit ``setting`` (one of :data:`LIMITS`) sets, from the settings (its default when unset).

    Raises:
        InvalidMetadata: the variable is set to something other than a positive integer.

    """
    return int(getattr(settings(), VARIABLES[setting].field))


def check_size(what: str, size: int, setting: str) -> None:
    """Refuse a record of ``size`` bytes over the limit ``setting`` sets."""
    if size > (most := limit(setting)):
        raise MetadataTooLarge(what, most, size, setting)


def check_count(what: str, entries: Sized) -> None:
    """Refuse more than ``PMR_MAX_ENTRIES`` tags, params or metrics."""
    if len(entries) > (most := limit(MAX_ENTRIES)):
        raise MetadataTooLarge(what, most, len(entries), MAX_ENTRIES, unit=what.rsplit(" ", 1)[-1])


def check_text(value: object, what: str, *, max_len: int = MAX_TEXT_LEN) -> str:
    """Return ``value`` if it is a string that UTF-8 can store (no lone surrogates)."""
    if not isinstance(value, str):
        raise InvalidMetadata(f"{what} must be a string, not {type(value).__name__}")
    if len(value) > max_len:
        raise InvalidMetadata(f"{what} is {len(value)} characters long; the limit is {max_len}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidMetadata(f"{what} holds a lone surrogate (not valid Unicode text)") from None
    return value


def check_optional_text(value: object, what: str) -> str | None:
    """Like :func:`check_text`, allowing None."""
    return None if value is None else check_text(value, what)


def check_op_key(key: object) -> str | None:
    """Return an operation key (or None): 1-512 characters of valid text."""
    if key is None:
        return None
    text = check_text(key, "operation key", max_len=MAX_KEY_LEN)
    if not text.strip():
        raise InvalidMetadata("operation key must not be blank")
    return text


def check_json(value: Any, what: str, depth: int = 0) -> None:
    """Refuse anything JSON cannot store exactly: non-string keys, NaN/inf, surrogates, other types."""
    if depth > _MAX_DEPTH:
        raise InvalidMetadata(f"{what} is nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMetadata(f"{what} holds {value}: only finite numbers can be stored")
        return
    if isinstance(value, str):
        check_text(value, what)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidMetadata(f"{what} has a non-string key {key!r}: JSON keys are strings")
            check_text(key, f"a key in {what}")
            check_json(item, f"{what}[{key!r}]", depth + 1)
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json(item, f"{what}[{i}]", depth + 1)
        return
    raise InvalidMetadata(f"{what} holds a {type(value).__name__}, which JSON cannot store")


def check_metrics(metrics: object) -> None:
    """Metric names are non-empty strings; values are finite numbers (not bools)."""
    if not isinstance(metrics, Mapping):
        raise InvalidMetadata("metrics must be a mapping of name to number")
    for key, value in metrics.items():
        if not isinstance(key, str) or not key:
            raise InvalidMetadata(f"metric name {key!r} must be a non-empty string")
        check_text(key, "a metric name", max_len=256)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidMetadata(f"metric {key!r} must be a number, not {type(value).__name__}")
        if not math.isfinite(value):
            raise InvalidMetadata(f"metric {key!r} is {value}: metrics must be finite numbers")


def check_tags(tags: object) -> None:
    """Tags map non-empty strings to strings."""
    if not isinstance(tags, Mapping):
        raise InvalidMetadata("tags must be a mapping of string to string")
    for key, value in tags.items():
        if not isinstance(key, str) or not key:
            raise InvalidMetadata(f"tag name {key!r} must be a non-empty string")
        check_text(key, "a tag name", max_len=256)
        check_text(value, f"tag {key!r}")


def check_info(info: object) -> VersionInfo:
    """Check everything a registrant says about a version (metrics, params, tags, texts, lineage, reports)."""
    if not isinstance(info, VersionInfo):
        raise InvalidMetadata(f"info must be a VersionInfo, not {type(info).__name__}")
    check_metrics(info.metrics)
    check_json(info.params, "params")
    check_tags(info.tags)
    for field in ("tags", "params", "metrics"):
        entries = getattr(info, field)
        if isinstance(entries, Mapping):
            check_count(f"a version's {field}", entries)
    check_text(info.description, "description")
    check_json(info.lineage.model_dump(mode="json"), "lineage")
    check_json(info.signature, "signature")
    if not isinstance(info.reports, Mapping):
        raise InvalidMetadata("reports must be a mapping of gate name to report")
    for gate, report in info.reports.items():
        check_gate(gate)
        check_gate_report(report, f"{gate} report")
    return info


def check_gate(gate: object) -> str:
    """A gate name: 1-64 ASCII letters, digits, ``_`` and ``-``."""
    if (
        not isinstance(gate, str)
        or not 0 < len(gate) <= 64
        or not gate.isascii()
        or not gate.replace("_", "").replace("-", "").isalnum()
    ):
        raise InvalidName(f"invalid gate name {gate!r}: use 1-64 ASCII letters, digits, '_' and '-'")
    return gate


def check_report(report: object, what: str = "report") -> Mapping[str, Any]:
    """A gate report: a JSON object (string keys at every depth, finite numbers, valid text)."""
    if not isinstance(report, Mapping):
        raise InvalidMetadata(f"{what} must be a mapping, not {type(report).__name__}")
    check_json(report, what)
    return report


def check_gate_report(report: object, what: str = "report") -> Mapping[str, Any]:
    """A gate report: :func:`check_report`, and the fields the registry reads typed as it reads them.

    ``passed`` and ``advisory`` decide whether the report blocks promotion, so they are real bools (``"false"``
    is not False); ``checks``, when present, is a list of objects (the failed ones are named in the event).
    """
    check_report(report, what)
    assert isinstance(report, Mapping)
    for flag in ("passed", "advisory"):
        if flag in report and not isinstance(report[flag], bool):
            raise InvalidMetadata(f"{what}: {flag!r} must be true or false, not {report[flag]!r:.60}")
    checks = report.get("checks", [])
    if not isinstance(checks, list) or not all(isinstance(c, Mapping) for c in checks):
        raise InvalidMetadata(f"{what}: 'checks' must be a list of objects, not {checks!r:.60}")
    return report


def check_version_number(version: object) -> int:
    """A version number: a positive int (not a bool) with at most 10 digits."""
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_VERSION:
        raise InvalidURI(f"version must be a positive integer up to {MAX_VERSION}, not {version!r}")
    return version


def check_flag(value: object, what: str) -> bool:
    """A real bool (``"false"`` is not False)."""
    if not isinstance(value, bool):
        raise InvalidMetadata(f"{what} must be True or False, not {value!r}")
    return value
