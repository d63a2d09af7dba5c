"""Review of a skops artifact before skops reads it: bounded work, then every node against the reviewed list.

skops decompresses each member a node names, once per node, and builds the whole node tree before its own audit,
so a 100 KB file whose nodes all name one highly compressed member takes gigabytes before anything is refused.
This review reads only the zip's central directory and ``schema.json`` and refuses, with
``ArtifactCapExceeded`` naming the cap and its setting, a file over any of these caps:

- members in the zip: ``PMR_SKOPS_MAX_MEMBERS``, default 10,000 (read from the end record before zipfile lists
  them);
- total uncompressed size: ``PMR_SKOPS_MAX_UNCOMPRESSED_BYTES``, default 16 GiB;
- compression ratio of each member, and of the archive as a whole, once above ``PMR_SKOPS_RATIO_MIN_BYTES``
  uncompressed (default 1 MiB): ``PMR_SKOPS_MAX_COMPRESSION_RATIO``, default 100;
- size of ``schema.json``: ``PMR_SKOPS_MAX_SCHEMA_BYTES``, default 256 MiB;
- nodes in the schema tree: ``PMR_SKOPS_MAX_NODES``, default 1,000,000; their nesting: ``PMR_SKOPS_MAX_DEPTH``,
  default 200;
- nodes that name one member: ``PMR_SKOPS_MAX_REFS_PER_MEMBER``, default 1.

Nodes sharing an ``__id__`` count as one (skops builds such a node once and reuses it; real dumps write a shared
array that way). Then it walks every node of the schema tree (no skops code runs, nothing is imported) and checks
each name against ``trusted_types`` for the node kind that uses it: anything refused is
``UntrustedType``, naming each refused name and kind. A file that is not a skops file at
all is :class:`~prefect_model_registry.registry.errors.ArtifactRefused`.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from prefect_model_registry.registry.core import trusted_types
from prefect_model_registry.registry.errors import ArtifactCapExceeded, ArtifactRefused, UntrustedType
from prefect_model_registry.registry.settings import (
    SKOPS_MAX_COMPRESSION_RATIO,
    SKOPS_MAX_DEPTH,
    SKOPS_MAX_MEMBERS,
    SKOPS_MAX_NODES,
    SKOPS_MAX_REFS_PER_MEMBER,
    SKOPS_MAX_SCHEMA_BYTES,
    SKOPS_MAX_UNCOMPRESSED_BYTES,
    SKOPS_RATIO_MIN_BYTES,
    VARIABLES,
    settings,
)

#: Most members a skops zip may hold (``PMR_SKOPS_MAX_MEMBERS``). Real models hold one per array: a 500-tree
#: forest holds about 1,000.
DEFAULT_MAX_MEMBERS: int = VARIABLES[SKOPS_MAX_MEMBERS].default
#: Most bytes a skops zip may hold once decompressed (``PMR_SKOPS_MAX_UNCOMPRESSED_BYTES``): room for multi-GB
#: models, not for a bomb.
DEFAULT_MAX_UNCOMPRESSED_BYTES: int = VARIABLES[SKOPS_MAX_UNCOMPRESSED_BYTES].default  # 16 GiB
#: Highest compression ratio of a member, and of the archive as a whole (``PMR_SKOPS_MAX_COMPRESSION_RATIO``).
#: skops writes members uncompressed unless told otherwise; arrays of real models compress far less than this.
DEFAULT_MAX_COMPRESSION_RATIO: float = VARIABLES[SKOPS_MAX_COMPRESSION_RATIO].default  # 100
#: Members (and archives) smaller than this uncompressed are not held to the ratio (``PMR_SKOPS_RATIO_MIN_BYTES``):
#: a tiny all-zero array compresses a thousandfold and costs nothing.
DEFAULT_RATIO_MIN_BYTES: int = VARIABLES[SKOPS_RATIO_MIN_BYTES].default  # 1 MiB
#: Largest ``schema.json`` (``PMR_SKOPS_MAX_SCHEMA_BYTES``): it is parsed whole, here and by skops.
DEFAULT_MAX_SCHEMA_BYTES: int = VARIABLES[SKOPS_MAX_SCHEMA_BYTES].default  # 256 MiB
#: Most nodes in the schema tree (``PMR_SKOPS_MAX_NODES``). Every estimator of scikit-learn holds a few hundred.
DEFAULT_MAX_NODES: int = VARIABLES[SKOPS_MAX_NODES].default  # 1,000,000
#: Deepest nesting of nodes (``PMR_SKOPS_MAX_DEPTH``): skops builds the tree recursively. Real models nest under 20.
DEFAULT_MAX_DEPTH: int = VARIABLES[SKOPS_MAX_DEPTH].default  # 200
#: How many nodes may name one member (``PMR_SKOPS_MAX_REFS_PER_MEMBER``): skops reads it once per node.
DEFAULT_MAX_REFS_PER_MEMBER: int = VARIABLES[SKOPS_MAX_REFS_PER_MEMBER].default  # 1

SCHEMA = "schema.json"


@dataclass(frozen=True)
class Limits:
    """The caps of one review (see the module docstring); :meth:`from_env` takes them from the settings."""

    max_members: int = DEFAULT_MAX_MEMBERS
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES
    max_compression_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO
    ratio_min_bytes: int = DEFAULT_RATIO_MIN_BYTES
    max_schema_bytes: int = DEFAULT_MAX_SCHEMA_BYTES
    max_nodes: int = DEFAULT_MAX_NODES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_refs_per_member: int = DEFAULT_MAX_REFS_PER_MEMBER

    @classmethod
    def from_env(cls) -> Limits:
        """The caps with each ``PMR_SKOPS_*`` setting that is set.

        Raises:
            InvalidMetadata: a setting is not a positive number.

        """
        env = settings()
        return cls(
            max_members=env.skops_max_members,
            max_uncompressed_bytes=env.skops_max_uncompressed_bytes,
            max_compression_ratio=env.skops_max_compression_ratio,
            ratio_min_bytes=env.skops_ratio_min_bytes,
            max_schema_bytes=env.skops_max_schema_bytes,
            max_nodes=env.skops_max_nodes,
            max_depth=env.skops_max_depth,
            max_refs_per_member=env.skops_max_refs_per_member,
        )


@dataclass(frozen=True)
class Use:
    """One name a node of the schema uses, and as what kind of node (``detail``: what a method node reaches)."""

    name: str
    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.name} as {self.kind}{self.detail}"


@dataclass
class Inspection:
    """What the bounded read of a skops file found: every name with its node kind, and the sizes."""

    uses: set[Use] = field(default_factory=set)
    nodes: int = 0
    members: int = 0
    uncompressed_bytes: int = 0
    protocol: int = 0

    def names(self) -> list[str]:
        """The names to hand skops as ``trusted`` once every use passed: all of them, each checked by kind."""
        return sorted({u.name for u in self.uses if u.kind not in trusted_types.UNNAMED_KINDS})

    def non_default(self) -> list[str]:
        """The names outside skops' own defaults for their kind: what a manifest records as reviewed."""
        defaults = trusted_types.skops_defaults()
        return sorted(
            {
                u.name
                for u in self.uses
                if u.kind not in trusted_types.UNNAMED_KINDS and u.name not in defaults.get(u.kind, frozenset())
            }
        )


def _refused(why: str) -> ArtifactRefused:
    return ArtifactRefused(f"not a skops file this registry can review: {why}")


def _declared_entries(fp: BinaryIO) -> int | None:
    """The member count the end-of-central-directory record declares, read before zipfile lists them all."""
    try:
        end = zipfile._EndRecData(fp)  # type: ignore[attr-defined]  # private, but stable since Python 2
        return None if end is None else int(end[zipfile._ECD_ENTRIES_TOTAL])  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError, IndexError):
        return None


def _open_zip(fp: BinaryIO, limits: Limits) -> tuple[zipfile.ZipFile, Inspection]:
    declared = _declared_entries(fp)
    if declared is not None and declared > limits.max_members:
        raise ArtifactCapExceeded("member count", "PMR_SKOPS_MAX_MEMBERS", limits.max_members, declared)
    try:
        zf = zipfile.ZipFile(fp)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise _refused(f"not a zip archive ({exc})") from None
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise ArtifactCapExceeded("member count", "PMR_SKOPS_MAX_MEMBERS", limits.max_members, len(infos))
    seen: set[str] = set()
    total = packed = 0
    for info in infos:
        if info.filename in seen:  # zipfile reads the last of duplicates; a reviewer might look at the first
            raise _refused(f"member {info.filename!r} appears twice")
        seen.add(info.filename)
        if info.flag_bits & 0x1:
            raise _refused(f"member {info.filename!r} is encrypted")
        total += info.file_size
        packed += info.compress_size
        _check_ratio(info.file_size, info.compress_size, limits, f"member {info.filename!r}")
    if total > limits.max_uncompressed_bytes:
        raise ArtifactCapExceeded(
            "total uncompressed size", "PMR_SKOPS_MAX_UNCOMPRESSED_BYTES", limits.max_uncompressed_bytes, total
        )
    # Many members just under the floor would each pass the member check: the archive is held to it too.
    _check_ratio(total, packed, limits, "the archive as a whole")
    return zf, Inspection(members=len(infos), uncompressed_bytes=total)


def _check_ratio(size: int, packed: int, limits: Limits, what: str) -> None:
    if size <= limits.ratio_min_bytes:
        return
    ratio = size / packed if packed else float("inf")
    if ratio > limits.max_compression_ratio:
        raise ArtifactCapExceeded(
            "compression ratio",
            "PMR_SKOPS_MAX_COMPRESSION_RATIO",
            limits.max_compression_ratio,
            ratio if packed else size,
            f"{what}: {size} bytes from {packed}",
        )


def _read_schema(zf: zipfile.ZipFile, limits: Limits) -> tuple[dict[str, Any], int]:
    try:
        info = zf.getinfo(SCHEMA)
    except KeyError:
        raise _refused(f"no {SCHEMA}") from None
    if info.file_size > limits.max_schema_bytes:
        raise ArtifactCapExceeded("schema size", "PMR_SKOPS_MAX_SCHEMA_BYTES", limits.max_schema_bytes, info.file_size)
    try:
        with zf.open(info) as member:
            raw = member.read(limits.max_schema_bytes + 1)  # zipfile stops at the declared size anyway
        schema = json.loads(raw)
    except (zipfile.BadZipFile, OSError, ValueError, RecursionError, NotImplementedError, EOFError) as exc:
        raise _refused(f"{SCHEMA} is unreadable ({type(exc).__name__})") from None
    if not isinstance(schema, dict):
        raise _refused(f"{SCHEMA} is not an object")
    protocol = schema.get("protocol")
    from skops.io._protocol import PROTOCOL

    if isinstance(protocol, bool) or not isinstance(protocol, int) or not 0 <= protocol <= PROTOCOL:
        raise _refused(f"protocol {protocol!r} (this skops reads 0 to {PROTOCOL})")
    return schema, protocol


class _Walk:
    """One pass over the schema tree, mirroring what each skops node class reads from its state."""

    def __init__(self, protocol: int, members: set[str], limits: Limits, found: Inspection) -> None:
        self.protocol, self.members, self.limits, self.found = protocol, members, limits, found
        self.refs: dict[str, set[object]] = {}
        self.stack: list[tuple[Any, int]] = []

    def run(self, root: dict[str, Any]) -> None:
        self.stack.append((root, 1))
        while self.stack:  # iterative: the depth cap, not Python's recursion limit, decides
            state, depth = self.stack.pop()
            self.found.nodes += 1
            if self.found.nodes > self.limits.max_nodes:
                raise ArtifactCapExceeded("node count", "PMR_SKOPS_MAX_NODES", self.limits.max_nodes, self.found.nodes)
            if depth > self.limits.max_depth:
                raise ArtifactCapExceeded("nesting depth", "PMR_SKOPS_MAX_DEPTH", self.limits.max_depth, depth)
            self.node(state, depth)

    def node(self, state: Any, depth: int) -> None:
        if not isinstance(state, dict):
            raise _refused("a node is not an object")
        loader = state.get("__loader__")
        kind = trusted_types.LOADER_KINDS.get(loader) if isinstance(loader, str) else None
        if kind is None:
            raise _refused(f"unknown node kind {loader!r}")
        if kind in trusted_types.UNNAMED_KINDS:
            if kind == "json" and not isinstance(state.get("content"), str):
                raise _refused("a JSON node without text")
            return
        name = self.name(state, kind)
        children: list[Any] = []
        detail = ""
        content = state.get("content")
        if kind == "object":
            if content is not None:
                children.append(content)
        elif kind in ("reduce", "dtype", "random_state"):
            children.append(self.need(state, "content"))
        elif kind in ("list", "set", "tuple"):
            children.extend(self.need(state, "content", list))
        elif kind == "dict":
            children.append(self.need(state, "key_types"))
            children.extend(self.need(state, "content", dict).values())
        elif kind == "defaultdict":
            children.extend(self.part(state, "main", "default_factory"))
        elif kind == "partial":
            children.extend(self.part(state, "func", "args", "kwds", "namespace"))
        elif kind == "masked_array":
            children.extend(self.part(state, "data", "mask"))
        elif kind in ("tree", "loss"):
            children.append(self.need(state, "content"))
            children.append(self.need(self.need(state, "__reduce__", dict), "args"))
        elif kind == "method":
            (obj,) = self.part(state, "obj")
            func = self.need(state, "content", dict).get("func")
            if not isinstance(func, str):
                raise _refused("a method node without an attribute name")
            children.append(obj)
            detail = f" (reaching .{func})"
        elif kind == "operator":
            children.append(self.need(state, "attrs"))
        elif kind in ("bytes", "bytearray"):
            self.member(state)
        elif kind == "sparse":
            if state.get("type") != "scipy":
                raise _refused("a sparse node of unknown type")
            self.member(state)
        elif kind == "ndarray":
            if state.get("type") == "numpy":
                self.member(state)
            elif state.get("type") == "json":
                children.extend(self.need(state, "content", list))
                children.append(self.need(state, "shape"))
            else:
                raise _refused("an array node of unknown type")
        elif kind == "random_generator":
            children.extend(self.random_generator(state))
        elif kind == "slice":
            self.need(state, "content", dict)  # start, stop and step are plain values
        self.found.uses.add(Use(name, kind, detail))
        self.stack.extend((child, depth + 1) for child in reversed(children))

    def name(self, state: dict[str, Any], kind: str) -> str:
        module, cls = state.get("__module__"), state.get("__class__")
        if kind == "function" and self.protocol == 0:
            # Protocol 0 functions are looked up by the names in their content (skops.io.old._general_v0).
            content = self.need(state, "content", dict)
            module, cls = content.get("module_path"), content.get("function")
        if not (isinstance(module, str) and isinstance(cls, str) and module and cls) or "." in cls:
            raise _refused(f"a {kind} node with an unusable name ({module!r}, {cls!r})")
        return f"{module}.{cls}"

    def need(self, state: dict[str, Any], key: str, kind: type | None = None) -> Any:
        if key not in state or (kind is not None and not isinstance(state[key], kind)):
            raise _refused(f"a {state.get('__loader__')} node without a valid {key!r}")
        return state[key]

    def part(self, state: dict[str, Any], *keys: str) -> list[Any]:
        content = self.need(state, "content", dict)
        return [self.need(content, key) for key in keys]

    def member(self, state: dict[str, Any]) -> None:
        name = self.need(state, "file", str)
        if name not in self.members or name == SCHEMA:
            raise _refused(f"a node names member {name!r}, which the archive lacks")
        # skops reads a member once per node it builds, and builds a node once per distinct __id__.
        ident = state.get("__id__")
        key: object = ("id", ident) if ident and isinstance(ident, int | str) else ("node", self.found.nodes)
        readers = self.refs.setdefault(name, set())
        readers.add(key)
        if len(readers) > self.limits.max_refs_per_member:
            raise ArtifactCapExceeded(
                "references to one member",
                "PMR_SKOPS_MAX_REFS_PER_MEMBER",
                self.limits.max_refs_per_member,
                len(readers),
                f"member {name!r}",
            )

    def random_generator(self, state: dict[str, Any]) -> list[Any]:
        if self.protocol == 0:
            raise _refused("a protocol 0 random generator (skops cannot load one either)")
        keys = ("bit_generator", "seed_seq") if self.protocol >= 2 else ("bit_generator",)
        parts = self.part(state, *keys)
        # skops calls numpy.random.<name> with the name stored as text inside the state: a name of its own.
        try:
            bit_generator = json.loads(parts[0]["content"]["bit_generator"]["content"])
        except (KeyError, TypeError, ValueError):
            bit_generator = None
        if not isinstance(bit_generator, str):
            raise _refused("a random generator without a bit generator name")
        self.found.uses.add(Use(f"numpy.random.{bit_generator}", "bit_generator"))
        return parts


def inspect(data: bytes | bytearray | memoryview | BinaryIO, limits: Limits | None = None) -> Inspection:
    """Read a skops file's zip directory and schema within the caps, and list every name each node uses.

    Nothing of the file is decompressed but ``schema.json``; no module is imported.

    Raises:
        ArtifactCapExceeded: a cap is exceeded (the error names it and its setting).
        ArtifactRefused: not a zip, no readable schema, an unknown node kind or a malformed node.

    """
    limits = limits if limits is not None else Limits.from_env()
    fp: BinaryIO = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
    zf, found = _open_zip(fp, limits)
    with zf:
        schema, found.protocol = _read_schema(zf, limits)
        _Walk(found.protocol, set(zf.namelist()), limits, found).run(schema)
    return found


def review(
    data: bytes | bytearray | memoryview | BinaryIO,
    *,
    extra: Iterable[str] = (),
    limits: Limits | None = None,
    action: str = "not loading it",
) -> Inspection:
    """:func:`inspect` a skops file, then admit each name for the node kind using it (``trusted_types``).

    Args:
        data: the artifact.
        extra: classes a caller vouches for (``trusted=``): each must pass :func:`trusted_types.check_extra`.
        limits: the caps (default: the settings, see :meth:`Limits.from_env`).
        action: what the refusal message says happens (``not loading it``, ``refusing to register it``).

    Raises:
        ArtifactCapExceeded, ArtifactRefused: see :func:`inspect`.
        UntrustedType: a name is not admitted as the kind that uses it (each refused one is named, with why and
            how an operator admits one).

    """
    extras = trusted_types.check_extra(extra)
    found = inspect(data, limits)
    refused = [
        f"{use}: {problem}"
        for use in sorted(found.uses, key=lambda u: (u.name, u.kind, u.detail))
        if (problem := trusted_types.admit(use.name, use.kind, extras)) is not None
    ]
    if refused:
        raise UntrustedType(
            f"model names what the reviewed list does not admit: {refused}; {action}. {trusted_types.HOW_TO_ADMIT}",
            refused,
        )
    return found
