"""Names and model URIs: what is allowed, and how ``models:/…`` URIs are read."""

from __future__ import annotations

import re
from dataclasses import dataclass

from prefect_model_registry.registry.errors import InvalidName, InvalidURI

STAGES = ("none", "staging", "production", "archived")
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_DIGITS = re.compile(r"[0-9]{1,10}")
# Alias names that would be ambiguous in a URI.
_RESERVED_ALIASES = {*STAGES, "latest"}


def check_model_name(name: object) -> str:
    """Return ``name`` if it is a valid model name.

    A name is 1-128 characters of letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit
    and holding no ``..``: safe as a path segment and as an S3 key segment.

    Raises:
        InvalidName: otherwise, saying why.

    """
    if not isinstance(name, str) or not name:
        raise InvalidName("model name must be a non-empty string")
    if len(name) > 128:
        raise InvalidName(f"model name is {len(name)} characters long; the limit is 128")
    if not _MODEL.fullmatch(name) or ".." in name:
        raise InvalidName(
            f"invalid model name {name!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return name


def check_alias(alias: object) -> str:
    """Return ``alias`` if it is a valid alias (lowercase, 1-63 characters, not a stage name or ``latest``).

    Raises:
        InvalidName: otherwise.

    """
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidName(
            f"invalid alias {alias!r}: use 1-63 lowercase letters, digits, '_' and '-', starting with a letter"
        )
    if alias in _RESERVED_ALIASES:
        raise InvalidName(f"{alias!r} is a stage or reserved word and cannot be an alias")
    return alias


def check_stage(stage: object) -> str:
    """Return ``stage`` if it is one of :data:`STAGES`."""
    if not isinstance(stage, str) or stage not in STAGES:
        raise InvalidName(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    return str(stage)


@dataclass(frozen=True)
class ModelRef:
    """A parsed model URI: a model plus exactly one of a version number, ``latest``, a stage or an alias."""

    name: str
    version: int | None = None
    label: str | None = None  # a stage, an alias, or "latest"

    def __str__(self) -> str:
        return (
            f"models:/{self.name}/{self.version}" if self.version is not None else f"models:/{self.name}@{self.label}"
        )


def parse_model_uri(uri: str) -> ModelRef:
    """Parse ``models:/NAME/VERSION``, ``models:/NAME/latest`` or ``models:/NAME@LABEL``.

    The ``models:/`` prefix may be left out (``churn@production``, ``churn/7``), as on the command line.

    Raises:
        InvalidURI: the URI has none of these forms.
        InvalidName: the name or label is invalid.

    """
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidURI("empty model URI")
    if not uri.isascii() or not uri.isprintable():
        raise InvalidURI(f"malformed model URI {uri!r}: only printable ASCII is allowed")
    body = uri.removeprefix("models:/")
    if "://" in body or body.startswith("/"):
        raise InvalidURI(f"malformed model URI {uri!r}: expected models:/NAME/VERSION or models:/NAME@ALIAS")
    if "@" in body:
        name, _, label = body.partition("@")
        if not label or "/" in label:
            raise InvalidURI(f"malformed model URI {uri!r}: nothing usable after '@'")
        check_model_name(name)
        if label == "latest":
            raise InvalidURI(f"{uri!r}: 'latest' is not an alias; the newest version is {name}/latest")
        if label not in STAGES:
            check_alias(label)
        return ModelRef(name, label=label)
    name, sep, version = body.partition("/")
    if not sep:
        raise InvalidURI(f"malformed model URI {uri!r}: give a version (NAME/7) or an alias (NAME@production)")
    check_model_name(name)
    if version == "latest":
        return ModelRef(name, label="latest")
    # ASCII digits only, matched whole: "²".isdigit() is True but int("²") fails.
    if not _DIGITS.fullmatch(version) or int(version) < 1:
        raise InvalidURI(f"malformed model URI {uri!r}: version must be a positive integer or 'latest'")
    return ModelRef(name, version=int(version))
