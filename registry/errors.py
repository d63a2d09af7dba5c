"""Typed errors of the registry.

Every error subclasses :class:`RegistryError` and the matching built-in, so callers can catch either
(``except LookupError`` works for a missing model as well as ``except ModelNotFound``).
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class of every error the registry raises on purpose."""


class InvalidName(RegistryError, ValueError):
    """A model, alias or key name breaks the naming rules."""


class InvalidURI(RegistryError, ValueError):
    """A model URI or registry location cannot be parsed."""


class InvalidMetadata(RegistryError, ValueError):
    """Metrics, params, tags or lineage fields are not acceptable (NaN, inf, not JSON)."""


class MetadataTooLarge(InvalidMetadata):
    """Metadata over a size or count limit (a manifest, an event, tags, params, metrics); nothing was written.

    ``what`` names the record, ``limit`` and ``actual`` the values, ``setting`` the environment variable that sets
    the limit.
    """

    def __init__(self, what: str, limit: int, actual: int, setting: str, unit: str = "bytes") -> None:
        super().__init__(f"{what}: {actual:,} {unit}, over the limit of {limit:,} ({setting})")
        self.what, self.limit, self.actual, self.setting = what, limit, actual, setting

    def __reduce__(self) -> tuple[type, tuple[str, int, int, str]]:
        return type(self), (self.what, self.limit, self.actual, self.setting)


class DatasetUnavailable(InvalidMetadata):
    """A registration names training data that cannot be read."""


class ModelNotFound(RegistryError, LookupError):
    """No model of that name is registered."""


class VersionNotFound(RegistryError, LookupError):
    """The model exists but not that version."""


class VersionDeleted(VersionNotFound):
    """The version was removed by retention (``pmr gc``): its manifest and history remain, its bytes do not."""


class AliasNotFound(RegistryError, LookupError):
    """No version carries that alias or stage."""


class InvalidTransition(RegistryError, ValueError):
    """A stage change that the lifecycle does not allow."""


class PromotionBlocked(RegistryError, PermissionError):
    """A version whose gates failed, or that was rejected, cannot be promoted."""


class ApprovalRequired(PromotionBlocked):
    """The model's approval policy protects the target stage and no approval is recorded."""


class ApprovalRefused(RegistryError, PermissionError):
    """A reviewer may not decide on this version (four-eyes rule, not an allowed reviewer)."""


class NothingToRollBack(RegistryError, LookupError):
    """The log holds no earlier production version to put back."""


class IntegrityError(RegistryError, ValueError):
    """Stored bytes do not match the hash recorded for them."""


class MalformedEvent(IntegrityError):
    """A correctly chained event lacks a field its type needs, or holds one of the wrong type.

    Its hash chain is intact, so it was written with write access to the store (or by a bug), not torn or
    altered afterwards: reads of the model stop at it rather than replay a state nobody can trust. ``model`` and
    ``seq`` name the event.
    """

    def __init__(self, model: str, seq: int, problem: str) -> None:
        super().__init__(
            f"event {seq} of {model} is malformed ({problem}); reads of {model} stop there: "
            "see `pmr verify --repair` for what to do"
        )
        self.model, self.seq, self.problem = model, seq, problem

    def __reduce__(self) -> tuple[type, tuple[str, int, str]]:
        return type(self), (self.model, self.seq, self.problem)


class UntrustedArtifact(RegistryError, PermissionError):
    """A serialised model holds types that are not on the trusted list."""


class ArtifactRefused(UntrustedArtifact):
    """The review of a skops artifact refused it before skops read it (see ``skops_review``)."""


class UntrustedType(ArtifactRefused):
    """A skops artifact names something the reviewed list does not admit, or admits it as another node kind.

    ``refused`` holds one line per refused name: the name, the node kind it was used as and why.
    """

    def __init__(self, message: str, refused: list[str] | None = None) -> None:
        super().__init__(message)
        self.refused = list(refused or [])

    def __reduce__(self) -> tuple[type, tuple[str, list[str]]]:
        return type(self), (str(self), self.refused)


class ArtifactCapExceeded(ArtifactRefused):
    """A skops artifact exceeds a cap on the work its review or its loading may take (size, ratio, nodes …).

    ``cap`` names the cap, ``setting`` the environment variable that sets it, ``limit`` and ``actual`` the values.
    """

    def __init__(self, cap: str, setting: str, limit: float, actual: float, what: str = "") -> None:
        detail = f" ({what})" if what else ""
        super().__init__(
            f"skops artifact exceeds the {cap} cap: {_number(actual)} > {_number(limit)}{detail}; "
            f"{setting} sets the cap"
        )
        self.cap, self.setting, self.limit, self.actual, self.what = cap, setting, limit, actual, what

    def __reduce__(self) -> tuple[type, tuple[str, str, float, float, str]]:
        return type(self), (self.cap, self.setting, self.limit, self.actual, self.what)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


class ArtifactLocationRefused(RegistryError, PermissionError):
    """An import source named artifacts outside what it may read (``pmr import-mlflow --allow-artifact-root``)."""


class ArtifactTooLarge(RegistryError, ValueError):
    """An imported version's artifacts exceed the size or file-count cap; nothing of them was kept."""


class SymlinkRefused(RegistryError, PermissionError):
    """A path leads through a symbolic link: the registry never deletes or writes through one (nothing was)."""


class IdempotencyConflict(RegistryError, ValueError):
    """An idempotency key was reused for different content."""


class ConcurrencyError(RegistryError, RuntimeError):
    """A conditional write kept losing races past the retry budget."""


class StoreError(RegistryError, OSError):
    """The object store failed or refused a request."""


class ObjectNotFound(StoreError, FileNotFoundError):
    """The object does not exist."""


class PreconditionFailed(StoreError):
    """A create-only or compare-and-swap write lost: the object exists or changed.

    ``taken`` is True when a create-only write lost because the object exists for sure (S3's 412, a local
    file already there); False when the store only asked for a retry (AWS's 409 for a concurrent conditional
    write), after which the object may or may not exist.
    """

    def __init__(self, message: str, *, taken: bool = False) -> None:
        super().__init__(message)
        self.taken = taken


class BucketNotFound(StoreError, FileNotFoundError):
    """The bucket (or local registry root) does not exist."""


class StoreAccessDenied(StoreError, PermissionError):
    """The credentials were refused."""


class StoreUnavailable(StoreError, ConnectionError):
    """The storage endpoint cannot be reached."""


class InvalidIdentity(InvalidMetadata):
    """A person's name (actor, reviewer, registrant) that names nobody once normalised (see registry.identity)."""


class PolicyProposalNotFound(RegistryError, LookupError):
    """No proposed policy change waits for approval (or not the one named)."""


__all__ = [
    "AliasNotFound",
    "ApprovalRefused",
    "ApprovalRequired",
    "ArtifactCapExceeded",
    "ArtifactLocationRefused",
    "ArtifactRefused",
    "ArtifactTooLarge",
    "BucketNotFound",
    "ConcurrencyError",
    "DatasetUnavailable",
    "IdempotencyConflict",
    "IntegrityError",
    "InvalidIdentity",
    "InvalidMetadata",
    "InvalidName",
    "InvalidTransition",
    "InvalidURI",
    "MalformedEvent",
    "MetadataTooLarge",
    "ModelNotFound",
    "NothingToRollBack",
    "ObjectNotFound",
    "PolicyProposalNotFound",
    "PreconditionFailed",
    "PromotionBlocked",
    "RegistryError",
    "StoreAccessDenied",
    "StoreError",
    "StoreUnavailable",
    "SymlinkRefused",
    "UntrustedArtifact",
    "UntrustedType",
    "VersionDeleted",
    "VersionNotFound",
]
