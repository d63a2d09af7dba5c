"""The reviewed list: what a skops artifact may name beyond skops' own defaults, per node kind, and the check.

skops rebuilds a model from ``schema.json``, a tree of nodes. Each node names a Python object ``module.name``,
which skops looks up with ``getattr(import_module(module), name)``, and its kind (``__loader__``) says what skops
does with it: build an instance without calling its constructor (``object``), hand back the class or the function
itself (``type``, ``function``), bind arguments to a function (``partial``), *call* it with arguments from the
file (``reduce``), fetch any attribute of a built object (``method``) … So a name is admitted only:

1. when it is listed for the kind of node using it: by skops' own defaults for that kind (:func:`skops_defaults`,
   from ``skops.io._trusted_types`` and the node classes), or by the reviewed list committed as
   ``registry/core/trusted_types.json``. Exact names, never prefixes; nothing is imported before this step;
2. and then, resolved the way skops resolves it, when what it finds carries that very name as its own
   ``__module__`` and ``__qualname__``. A re-export (``sklearn.utils.discovery.import_module`` *is*
   ``importlib.import_module``; ``numpy._core.multiarray.fromfile`` *is* ``numpy.fromfile``) is refused even
   when listed. Two exceptions are skops' own naming: a ufunc (arithmetic; scipy's carry no ``__module__``) needs
   only its ``__name__`` to match, and a bit generator is named ``numpy.random.<Name>`` and must be a
   ``numpy.random.BitGenerator`` subclass.

No list holds the kinds ``reduce``, ``method`` or ``operator``: nothing scikit-learn builds needs them.

The reviewed list is generated, not hand-edited:
``python -m prefect_model_registry.registry.core.trusted_types_build --write`` fits every estimator
(``specimens``), dumps each with skops and records every name and kind outside skops' defaults, plus the short
hand-reviewed :data:`REVIEWED`. ``python -m prefect_model_registry.registry.core.trusted_types_build --check`` (and
``tests/registry/test_load_allowlist.py``) fails when the installed scikit-learn would add or drop a name, so
an upgrade is a reviewed change.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from prefect_model_registry.registry.errors import UntrustedType

#: skops' node classes (``__loader__``) and the kind each one is checked as.
LOADER_KINDS: dict[str, str] = {
    "ObjectNode": "object",
    "TypeNode": "type",
    "FunctionNode": "function",
    "PartialNode": "partial",
    "ConstructorFromReduceNode": "reduce",
    "MethodNode": "method",
    "OperatorFuncNode": "operator",
    "DictNode": "dict",
    "DefaultDictNode": "defaultdict",
    "ListNode": "list",
    "SetNode": "set",
    "TupleNode": "tuple",
    "BytesNode": "bytes",
    "BytearrayNode": "bytearray",
    "SliceNode": "slice",
    "JsonNode": "json",
    "NdArrayNode": "ndarray",
    "MaskedArrayNode": "masked_array",
    "DTypeNode": "dtype",
    "RandomStateNode": "random_state",
    "RandomGeneratorNode": "random_generator",
    "SparseMatrixNode": "sparse",
    "TreeNode": "tree",
    "LossNode": "loss",
    "CachedNode": "cached",
}
#: Every kind a list entry may name: the node kinds, plus the bit generator a random generator node calls.
KINDS = frozenset(LOADER_KINDS.values()) | {"bit_generator"}
#: Kinds whose name nothing looks up: JSON text (parsed as data), and a reference to a node met earlier.
UNNAMED_KINDS = frozenset({"json", "cached"})
#: Kinds that call what the file names with the file's arguments, or reach any attribute: on no list.
CALLING_KINDS = frozenset({"reduce", "method", "operator"})
#: The kind a caller's ``trusted=`` names are admitted as: an instance built without calling anything.
CALLER_KINDS = frozenset({"object"})
#: Packages a caller's ``trusted=`` classes may come from.
CALLER_ROOTS = frozenset({"sklearn", "numpy", "scipy"})

#: The committed list, next to this module (package data).
DATA_FILE = "trusted_types.json"
#: What to run to regenerate it.
GENERATOR = "python -m prefect_model_registry.registry.core.trusted_types_build --write"
#: How an operator admits a refused name: part of every refusal.
HOW_TO_ADMIT = (
    "To admit a name after reviewing what it does: add its exact name and node kind to REVIEWED in "
    f"registry/core/trusted_types.py, run `{GENERATOR}` and commit registry/core/trusted_types.json "
    "(an audited code change)."
)

_SCORE_FUNCTION = "a univariate feature score over arrays: what SelectKBest and its siblings hold as score_func"
#: Names admitted beyond what the specimens hold, each with why it is safe. Keep this short: a function here is
#: one a model may hold and call later with arguments of the file's choosing.
REVIEWED: dict[str, tuple[tuple[str, ...], str]] = {
    "functools.partial": (
        ("partial",),
        "binds arguments to a function, which is a node of its own and checked like any other; a categorical "
        "HistGradientBoosting holds partial(check_array, ...)",
    ),
    "sklearn.utils.validation.check_array": (
        ("function",),
        "validates and converts an array; a categorical HistGradientBoosting binds it with functools.partial",
    ),
    "sklearn.compose._column_transformer.make_column_selector": (
        ("object",),
        "picks a table's columns by dtype or name pattern (plain attributes, its dtypes are type nodes checked on "
        "their own); ColumnTransformers built as the README's own-data pipeline hold it",
    ),
    "sklearn.feature_selection._univariate_selection.chi2": (("function",), _SCORE_FUNCTION),
    "sklearn.feature_selection._univariate_selection.f_classif": (("function",), _SCORE_FUNCTION),
    "sklearn.feature_selection._univariate_selection.f_regression": (("function",), _SCORE_FUNCTION),
    "sklearn.feature_selection._univariate_selection.r_regression": (("function",), _SCORE_FUNCTION),
    "sklearn.feature_selection._mutual_info.mutual_info_classif": (("function",), _SCORE_FUNCTION),
    "sklearn.feature_selection._mutual_info.mutual_info_regression": (("function",), _SCORE_FUNCTION),
}

#: How many specimens an entry of the committed file names as where it was seen (for a reviewer, not checked).
SEEN_IN = 3


@functools.cache
def skops_defaults() -> dict[str, frozenset[str]]:
    """The names skops trusts by default, per node kind, exactly as its node classes do.

    A default is admitted only as the kind skops trusts it for: ``builtins.int`` as a type, never in a reduce node.
    """
    import numpy as np
    import scipy.sparse
    from skops.io import _trusted_types as tt
    from skops.io._sklearn import ALLOWED_LOSSES
    from skops.io._utils import get_type_name
    from skops.utils._fixes import get_sparray_type

    sparse: list[Any] = [scipy.sparse.spmatrix]
    if (sparray := get_sparray_type()) is not None:
        sparse.append(sparray)
    kinds: dict[str, list[str]] = {
        "object": tt.SKLEARN_ESTIMATOR_TYPE_NAMES + tt.SKLEARN_INTERNAL_TYPE_NAMES,
        "type": tt.PRIMITIVE_TYPE_NAMES + tt.CONTAINER_TYPE_NAMES + tt.NUMPY_DTYPE_TYPE_NAMES,
        "function": tt.SCIPY_UFUNC_TYPE_NAMES + tt.NUMPY_UFUNC_TYPE_NAMES,
        "dict": ["builtins.dict", "collections.OrderedDict"],
        "defaultdict": ["collections.defaultdict"],
        "list": ["builtins.list"],
        "set": ["builtins.set"],
        "tuple": ["builtins.tuple"],
        "bytes": ["builtins.bytes"],
        "bytearray": ["builtins.bytearray"],
        "slice": ["builtins.slice"],
        "ndarray": ["numpy.ndarray", *tt.NUMPY_DTYPE_TYPE_NAMES],
        "masked_array": [get_type_name(np.ma.MaskedArray)],
        "random_state": [get_type_name(np.random.RandomState)],
        "random_generator": [get_type_name(np.random.Generator)],
        "bit_generator": list(tt.NUMPY_RANDOM_BIT_GENERATOR_TYPE_NAMES),
        "sparse": [get_type_name(t) for t in sparse],
        "loss": [get_type_name(t) for t in ALLOWED_LOSSES],
    }
    return {kind: frozenset(names) for kind, names in kinds.items()}


def data_path() -> Path:
    """The committed list in the source tree (where --write writes it)."""
    return Path(__file__).with_name(DATA_FILE)


@functools.cache
def reviewed() -> dict[str, frozenset[str]]:
    """The committed reviewed list: each name with the node kinds it is admitted as."""
    raw = json.loads(resources.files(__package__).joinpath(DATA_FILE).read_text(encoding="utf-8"))
    entries = raw["names"]
    out: dict[str, frozenset[str]] = {}
    for name, entry in entries.items():
        kinds = frozenset(entry["kinds"])
        unknown = kinds - KINDS
        if unknown or not kinds:
            raise ValueError(f"{DATA_FILE}: {name} lists unknown node kinds {sorted(unknown)}")
        out[name] = kinds
    return out


def allowed_kinds(name: str, extra: frozenset[str] = frozenset()) -> frozenset[str]:
    """The node kinds ``name`` is listed for: by skops' defaults, the reviewed list and a caller's ``extra``."""
    kinds = {kind for kind, names in skops_defaults().items() if name in names}
    kinds |= reviewed().get(name, frozenset())
    if name in extra:
        kinds |= CALLER_KINDS
    return frozenset(kinds)


def admit(name: str, kind: str, extra: frozenset[str] = frozenset()) -> str | None:
    """Whether a node of ``kind`` may use ``name``: ``None`` if so, else why not.

    The name must be listed for that kind before anything is imported; only then is it resolved and its identity
    checked (see the module docstring).
    """
    if kind in UNNAMED_KINDS:
        return None
    kinds = allowed_kinds(name, extra)
    if not kinds:
        return "not on the reviewed list"
    if kind not in kinds:
        return f"listed only as {', '.join(sorted(kinds))}"
    return identity_problem(name, bit_generator=kind == "bit_generator")


def _is_ufunc(obj: object) -> bool:
    import numpy as np
    from skops.utils._fixes import get_scipy_ufunc_wrapper_type

    wrapper = get_scipy_ufunc_wrapper_type()
    return isinstance(obj, np.ufunc) or (wrapper is not None and isinstance(obj, wrapper))


@functools.cache
def identity_problem(name: str, *, bit_generator: bool = False) -> str | None:
    """Resolve a listed ``name`` as skops does and check that it is what it says: ``None``, or the problem.

    Only call this for a name already on a list: resolving imports its module.
    """
    module, _, attr = name.rpartition(".")
    if not module or not attr:
        return "not a qualified name"
    try:
        obj = getattr(importlib.import_module(module), attr)
    except Exception as exc:  # any failure of a listed module to import: the name cannot be what was reviewed
        return f"does not resolve here ({type(exc).__name__}: {exc})"
    own_module, own_name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if bit_generator:
        import numpy as np

        if isinstance(obj, type) and issubclass(obj, np.random.BitGenerator) and obj.__name__ == attr:
            return None
        return "not a numpy bit generator"
    if (own_module, own_name) == (module, attr):
        return None
    if _is_ufunc(obj) and getattr(obj, "__name__", None) == attr and own_module in (None, module):
        return None
    return f"resolves to {own_module}.{own_name}, a re-export under another name"


def check_extra(names: Iterable[str]) -> frozenset[str]:
    """Check the classes a caller vouches for (``trusted=``) and return them.

    Each must be an exact name of a class of scikit-learn, NumPy or SciPy that is what its name says; it is then
    admitted as an ``object`` node only (an instance built without calling its constructor), never as a type,
    function or call.

    Raises:
        UntrustedType: a name is not such a class (named, with why).

    """
    if isinstance(names, str):
        names = [names]
    refused: list[str] = []
    for name in names:
        if not isinstance(name, str):
            refused.append(f"{name!r}: not a name")
            continue
        if name.partition(".")[0] not in CALLER_ROOTS:
            refused.append(f"{name}: not from {', '.join(sorted(CALLER_ROOTS))}")
            continue
        problem = identity_problem(name)
        if problem is None:
            module, _, attr = name.rpartition(".")
            if not isinstance(getattr(importlib.import_module(module), attr), type):
                problem = "not a class"
        if problem is not None:
            refused.append(f"{name}: {problem}")
    if refused:
        raise UntrustedType(
            f"trusted= names {refused} are never trusted: a caller may vouch only for exact classes of "
            f"{', '.join(sorted(CALLER_ROOTS))}. {HOW_TO_ADMIT}",
            refused,
        )
    return frozenset(names)
