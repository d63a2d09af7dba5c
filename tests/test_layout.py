"""The package's shape: one import name, no private names across modules, import contracts that bite, typed
events that cover every stored type.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from prefect_model_registry.registry import Event, EventType
from prefect_model_registry.registry.events import SPECS, describe_change

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("registry", "flows", "validations")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("bare", PACKAGES)
def test_bare_folder_names_do_not_import_from_the_checkout(bare: str) -> None:
    # Run from the checkout, whose folders are on sys.path: only the installed name may load them, so no class
    # exists twice under two names.
    code = f"import {bare}"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and f"import prefect_model_registry.{bare}, not '{bare}'" in done.stderr


def test_the_package_loads_from_the_checkout_under_its_one_name() -> None:
    import prefect_model_registry.registry as registry

    assert Path(registry.__file__).parent == ROOT / "registry"
    assert "registry" not in sys.modules and "flows" not in sys.modules and "validations" not in sys.modules


def test_no_private_name_is_imported_across_modules() -> None:
    found = []
    for top in PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prefect_model_registry"):
                    private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                    found += [f"{path.relative_to(ROOT)}:{node.lineno} {node.module}.{name}" for name in private]
    assert not found, found


def test_every_event_type_has_one_spec_with_a_sentence() -> None:
    assert set(SPECS) == set(EventType)
    for kind in SPECS:
        event = Event(seq=1, type=kind, model="m", version=3, actor="a", prev_hash="0" * 64, at=AT, data={})
        assert describe_change(event), kind
    # An EventType is its stored string: events written with either are byte-identical (the log is hashed).
    plain = Event(seq=1, type="registered", model="m", version=1, actor="a", prev_hash="0" * 64, at=AT)
    typed = plain.model_copy(update={"type": EventType.REGISTERED})
    assert typed.to_bytes() == plain.to_bytes()


# Each import contract, and one import that breaks it (added to a copy of the package).
BREAKS = {
    "registry and validations never import flows or Prefect": ("registry/core/keys.py", "import prefect"),
    "validations import no CLI": ("validations/report.py", "import typer"),
    "the registry's layers import only downwards": (
        "registry/core/log.py",
        "from prefect_model_registry.registry.cli import context",
    ),
    "the S3 and directory backends are written against the store interface, never the reverse": (
        "registry/store/base.py",
        "from prefect_model_registry.registry.store import local",
    ),
    "flows: developer tools over the CLI over the flows over their tasks over plain logic": (
        "flows/core/config.py",
        "import prefect_model_registry.flows.cli",
    ),
}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the three packages under their installed names, and the project's contracts."""
    root = tmp_path_factory.mktemp("contracts")
    for top in PACKAGES:
        shutil.copytree(ROOT / top, root / "prefect_model_registry" / top, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"]
    return subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold(tree: Path) -> None:
    done = lint_imports(tree)
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"{len(BREAKS)} kept, 0 broken" in done.stdout


@pytest.mark.parametrize("contract", list(BREAKS))
def test_each_import_contract_fails_on_a_forbidden_import(tree: Path, contract: str) -> None:
    module, line = BREAKS[contract]
    path = tree / "prefect_model_registry" / module
    original = path.read_text()
    path.write_text(original + f"\n{line}  # added by the test\n")
    try:
        done = lint_imports(tree)
    finally:
        path.write_text(original)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "1 broken" in done.stdout, done.stdout[-3000:]
    broken = done.stdout.split("Broken contracts", 1)[1]
    assert " ".join(contract.split()) in " ".join(broken.split())


def test_retry_keys_have_one_name(tmp_path: Path) -> None:
    import inspect

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from prefect_model_registry.registry import Registry, VersionInfo
    from prefect_model_registry.registry.errors import InvalidMetadata

    reg = Registry.open(str(tmp_path / "reg"))
    writers = [getattr(reg, name) for name in dir(reg) if not name.startswith("_")]
    for writer in writers:
        if callable(writer):
            params = inspect.signature(writer).parameters
            assert "idempotency_key" not in params or "operation_key" in params, writer
    model = LogisticRegression().fit(np.array([[0.0], [1.0]] * 2), [0, 1] * 2)
    first = reg.register_model("m", model, VersionInfo(), operation_key="k")
    # The old name still works, with a warning, and is the same key.
    with pytest.warns(DeprecationWarning, match="operation_key"):
        again = reg.register_model("m", model, VersionInfo(), idempotency_key="k")
    assert again.version == first.version == 1
    with pytest.warns(DeprecationWarning), pytest.raises(InvalidMetadata, match="give one"):
        reg.register_model("m", model, VersionInfo(), idempotency_key="k", operation_key="other")


CYCLES = """
import grimp, json
graph = grimp.build_graph("prefect_model_registry", exclude_type_checking_imports=True, cache_dir=None)
mods = sorted(m for m in graph.modules if m.startswith("prefect_model_registry."))
edges = {m: sorted(d for d in graph.find_modules_directly_imported_by(m) if d in graph.modules) for m in mods}
print(json.dumps(edges))
"""


def import_cycles(tree: Path) -> list[str]:
    """Modules of the package that reach themselves through their imports (TYPE_CHECKING ones do not count)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", CYCLES], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    edges: dict[str, list[str]] = json.loads(done.stdout)
    cycles = []
    for start in edges:
        seen, todo = set(), list(edges[start])
        while todo:
            module = todo.pop()
            if module == start:
                cycles.append(start)
                break
            if module not in seen:
                seen.add(module)
                todo.extend(edges.get(module, []))
    return cycles


def test_no_import_cycle(tree: Path) -> None:
    # Every import counts, a function-level one too; annotations under TYPE_CHECKING do not.
    assert import_cycles(tree) == []
    events = tree / "prefect_model_registry" / "registry" / "events.py"
    original = events.read_text()
    events.write_text(original + "\nfrom prefect_model_registry.registry.core import replay  # added by the test\n")
    try:
        assert "prefect_model_registry.registry.events" in import_cycles(tree)
    finally:
        events.write_text(original)
