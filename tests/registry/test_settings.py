"""Every ``PMR_*`` environment variable is read in one place, ``registry/settings.py`` (issue "Settings read once").

The registry, the flows and the validations take their settings from ``settings()``; nothing else reads a
``PMR_*`` variable from the environment. Every variable is documented in the README, keeps its default, and a
value it cannot hold is refused with a typed error naming it.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from prefect_model_registry.registry import settings as settings_module
from prefect_model_registry.registry.errors import InvalidMetadata
from prefect_model_registry.registry.settings import VARIABLES, Settings, settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("registry", "flows", "validations")
SETTINGS_FILE = ROOT / "registry" / "settings.py"


def _sources() -> list[Path]:
    files = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    assert SETTINGS_FILE in files
    return [path for path in files if path != SETTINGS_FILE]


def _mentions_environ(node: ast.AST) -> bool:
    return any(
        (isinstance(sub, ast.Attribute) and sub.attr in ("environ", "environb"))
        or (isinstance(sub, ast.Name) and sub.id in ("environ", "environb"))
        for sub in ast.walk(node)
    )


def _is_getenv(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr in ("getenv", "getenvb")) or (
        isinstance(func, ast.Name) and func.id in ("getenv", "getenvb")
    )


def _env_reads(tree: ast.AST) -> list[tuple[int, ast.expr | None]]:
    """Every read of the environment in ``tree``: its line and the key expression (None: the whole mapping)."""
    reads: list[tuple[int, ast.expr | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if _is_getenv(func):
                reads.append((node.lineno, node.args[0] if node.args else None))
            elif isinstance(func, ast.Attribute) and _mentions_environ(func.value):
                if func.attr in ("get", "pop", "setdefault", "__getitem__"):
                    reads.append((node.lineno, node.args[0] if node.args else None))
                elif func.attr in ("items", "keys", "values", "copy"):
                    reads.append((node.lineno, None))
        elif isinstance(node, ast.Subscript) and _mentions_environ(node.value):
            reads.append((node.lineno, node.slice))
        elif isinstance(node, ast.Compare) and any(_mentions_environ(c) for c in node.comparators):
            reads.append((node.lineno, node.left))
    return reads


def test_no_module_but_settings_reads_a_pmr_variable() -> None:
    offences = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT)
        for line_no, line in enumerate(text.splitlines(), 1):
            if "PMR_" in line and re.search(r"\b(environ|getenv)\b", line):
                offences.append(f"{where}:{line_no}: {line.strip()}")
        tree = ast.parse(text, filename=str(path))
        for line_no, key in _env_reads(tree):
            # Only a literal key that names no PMR_ variable may be read here (AWS_*, MLFLOW_*, XDG_*, ...):
            # a PMR_ literal, or a name or expression that could hold one, is a read settings() should do.
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str) and not key.value.startswith("PMR_")):
                shown = ast.unparse(key) if key is not None else "the whole environment"
                offences.append(f"{where}:{line_no}: reads {shown}")
        for node in ast.walk(tree):
            # typer reads its envvar= itself: that is allowed, named from the settings module's constants.
            if isinstance(node, ast.keyword) and node.arg == "envvar":
                values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
                for value in values:
                    if isinstance(value, ast.Constant) and str(value.value).startswith("PMR_"):
                        offences.append(f"{where}:{node.value.lineno}: envvar={value.value!r}, not a settings constant")
    assert not offences, "PMR_ variables read outside registry/settings.py:\n" + "\n".join(offences)


def test_every_pmr_name_in_the_code_is_a_known_setting() -> None:
    names = {
        name
        for path in _sources()
        for name in re.findall(r"\bPMR_[A-Z0-9_]+", path.read_text(encoding="utf-8"))
        if not name.endswith("_")  # "PMR_SKOPS_*" in prose
    }
    assert names <= set(VARIABLES), f"unknown settings named in the code: {sorted(names - set(VARIABLES))}"


def test_every_variable_is_documented_on_the_docs_site() -> None:
    # The settings page is generated from VARIABLES at every build (docs/hooks.py), so each variable with its
    # description, default and limit is on it; the guides also name the ones a user sets by hand.
    page = (ROOT / "docs" / "content" / "reference" / "settings.md").read_text(encoding="utf-8")
    assert "<!-- generated: settings -->" in page
    assert all(VARIABLES[name].description.strip() for name in VARIABLES)
    prose = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs" / "content").rglob("*.md"))
    named = [
        name for name in ("PMR_REGISTRY_URI", "PMR_ACTOR", "PMR_CACHE_DIR", "PMR_TRAINER_MODULES") if name in prose
    ]
    assert len(named) == 4, named


def test_the_table_is_the_settings_fields() -> None:
    fields = Settings.__dataclass_fields__
    assert [var.field for var in VARIABLES.values()] == list(fields)
    for name, var in VARIABLES.items():
        assert name.startswith("PMR_") and var.name == name and var.description
        assert getattr(settings_module, name.removeprefix("PMR_")) == name  # the constant typer options use
    rendered = settings_module.table()
    assert all(f"`{name}`" in rendered for name in VARIABLES)


def test_defaults_are_kept() -> None:
    expected = {
        "PMR_REGISTRY_URI": ".pmr/registry",
        "PMR_ACTOR": None,
        "PMR_CACHE_DIR": None,
        "PMR_S3_DIRECT": True,
        "PMR_MAX_MANIFEST_BYTES": 1024 * 1024,
        "PMR_MAX_EVENT_BYTES": 256 * 1024,
        "PMR_MAX_ENTRIES": 1_000,
        "PMR_SNAPSHOT_MAX_BYTES": 100 * 1024 * 1024,
        "PMR_SKOPS_MAX_MEMBERS": 10_000,
        "PMR_SKOPS_MAX_UNCOMPRESSED_BYTES": 16 * 1024**3,
        "PMR_SKOPS_MAX_COMPRESSION_RATIO": 100.0,
        "PMR_SKOPS_RATIO_MIN_BYTES": 1024**2,
        "PMR_SKOPS_MAX_SCHEMA_BYTES": 256 * 1024**2,
        "PMR_SKOPS_MAX_NODES": 1_000_000,
        "PMR_SKOPS_MAX_DEPTH": 200,
        "PMR_SKOPS_MAX_REFS_PER_MEMBER": 1,
        "PMR_MLFLOW_MAX_VERSION_BYTES": 2 * 1024**3,
        "PMR_MLFLOW_MAX_VERSION_FILES": 10_000,
        "PMR_TRAINER_MODULES": (),
        "PMR_CI_DEPLOYMENT": "retrain-model/retrain",
        "PMR_MULTIPART_THRESHOLD": 64 * 1024**2,
        "PMR_MULTIPART_CHUNK": 8 * 1024**2,
        "PMR_TRANSFER_CONCURRENCY": 4,
        "PMR_PREFECT_UI_URL": None,
        "PMR_DASHBOARD_URL": None,
    }
    assert {name: var.default for name, var in VARIABLES.items()} == expected
    assert settings({}) == Settings()
    blank = settings(dict.fromkeys(VARIABLES, ""))  # blank means unset (PMR_S3_DIRECT: only "0" turns it off)
    assert blank == Settings()


def test_values_are_parsed_and_read_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert settings() == Settings()
    monkeypatch.setenv("PMR_MAX_ENTRIES", " 5 ")
    monkeypatch.setenv("PMR_SKOPS_MAX_COMPRESSION_RATIO", "12.5")
    monkeypatch.setenv("PMR_TRAINER_MODULES", " team.train, ,team.hgb ")
    monkeypatch.setenv("PMR_S3_DIRECT", "0")
    monkeypatch.setenv("PMR_CACHE_DIR", "Off")
    monkeypatch.setenv("PMR_ACTOR", "ana@example.com")
    monkeypatch.setenv("PMR_PREFECT_UI_URL", " http://127.0.0.1:4200/ ")
    monkeypatch.setenv("PMR_DASHBOARD_URL", "https://pmr.example/team/")
    now = settings()
    assert now.prefect_ui_url == "http://127.0.0.1:4200"
    assert now.dashboard_url == "https://pmr.example/team"
    assert (now.max_entries, now.skops_max_compression_ratio) == (5, 12.5)
    assert now.trainer_modules == ("team.train", "team.hgb")
    assert now.s3_direct is False and now.cache_dir == settings_module.CACHE_OFF and now.actor == "ana@example.com"
    monkeypatch.setenv("PMR_MAX_ENTRIES", "7")  # changed after the first read: not cached
    monkeypatch.setenv("PMR_CACHE_DIR", "/tmp/pmr-cache")
    assert settings().max_entries == 7 and settings().cache_dir == "/tmp/pmr-cache"
    with pytest.raises(dataclasses.FrozenInstanceError):
        now.max_entries = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PMR_MAX_MANIFEST_BYTES", "lots", "PMR_MAX_MANIFEST_BYTES='lots' is not a positive integer"),
        ("PMR_MAX_EVENT_BYTES", "0", "PMR_MAX_EVENT_BYTES='0' is not a positive integer"),
        ("PMR_MAX_ENTRIES", "-3", "PMR_MAX_ENTRIES='-3' is not a positive integer"),
        ("PMR_SNAPSHOT_MAX_BYTES", "1e6", "PMR_SNAPSHOT_MAX_BYTES must be a whole number of bytes, got '1e6'"),
        ("PMR_SNAPSHOT_MAX_BYTES", "-1", "PMR_SNAPSHOT_MAX_BYTES must be a whole number of bytes, got '-1'"),
        ("PMR_SKOPS_MAX_NODES", "many", "PMR_SKOPS_MAX_NODES must be a positive whole number, got 'many'"),
        ("PMR_SKOPS_MAX_DEPTH", "0", "PMR_SKOPS_MAX_DEPTH must be a positive number, got '0'"),
        ("PMR_SKOPS_MAX_COMPRESSION_RATIO", "x", "PMR_SKOPS_MAX_COMPRESSION_RATIO must be a positive number, got 'x'"),
        ("PMR_SKOPS_MAX_COMPRESSION_RATIO", "-2", "PMR_SKOPS_MAX_COMPRESSION_RATIO must be a positive number"),
        ("PMR_MLFLOW_MAX_VERSION_BYTES", "2GiB", "PMR_MLFLOW_MAX_VERSION_BYTES must be a whole number of bytes or"),
        ("PMR_MLFLOW_MAX_VERSION_FILES", "-1", "PMR_MLFLOW_MAX_VERSION_FILES must not be negative, got -1"),
        ("PMR_PREFECT_UI_URL", "localhost:4200", "PMR_PREFECT_UI_URL must be an http:// or https:// address"),
        ("PMR_DASHBOARD_URL", "127.0.0.1:8000", "PMR_DASHBOARD_URL must be an http:// or https:// address"),
        ("PMR_DASHBOARD_URL", "http://a b", "PMR_DASHBOARD_URL must be an http:// or https:// address"),
        ("PMR_MULTIPART_CHUNK", "1048576", "PMR_MULTIPART_CHUNK must be at least 5 MiB (5242880 bytes)"),
        ("PMR_TRANSFER_CONCURRENCY", "0", "PMR_TRANSFER_CONCURRENCY must be a positive number"),
    ],
)
def test_a_bad_value_is_a_typed_error_naming_the_variable(
    name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidMetadata) as info:
        settings()
    assert str(info.value).startswith(message)
    with pytest.raises(InvalidMetadata, match=name):
        settings({name: value})


def test_the_scan_sees_each_way_of_reading_the_environment() -> None:
    source = """
import os
from os import environ, getenv
NAME = "PMR_X"
a = os.environ.get("PMR_X")
b = os.getenv(NAME)
c = os.environ["PMR_X"]
d = (os.environ if e is None else e).get("PMR_X", "")
f = "PMR_X" in environ
g = getenv("PMR_X")
h = os.environ.get("AWS_ENDPOINT_URL")
"""
    keys = [ast.unparse(key) if key is not None else None for _, key in _env_reads(ast.parse(source))]
    assert sorted(keys, key=str) == sorted(
        ["'PMR_X'", "NAME", "'PMR_X'", "'PMR_X'", "'PMR_X'", "'PMR_X'", "'AWS_ENDPOINT_URL'"], key=str
    )
