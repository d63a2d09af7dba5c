"""Loading never runs code the registry did not review: the reviewed list, node kinds and caps, attack by attack.

Each attack test first shows that its payload acts under the loading logic of the release before the reviewed list
(``tests/registry/attacks_skops.py``, run in a fresh process): a tripwire file appears, a canary file is read, a
module of the file's choosing is imported, or gigabytes are taken. Then that registration refuses it with a typed
error and writes nothing, that a copy stored by the old release does not load (``UntrustedType`` naming what and
how to admit it) and is reported by ``verify``, and that none of it ran or was read.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, ShuffleSplit
from sklearn.preprocessing import StandardScaler

from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.core import artifacts, skops_review, trusted_types, trusted_types_build
from prefect_model_registry.registry.core.artifacts import deserialize
from prefect_model_registry.registry.errors import (
    ArtifactCapExceeded,
    ArtifactRefused,
    InvalidMetadata,
    UntrustedArtifact,
    UntrustedType,
)
from prefect_model_registry.registry.interop.copy import copy_version
from prefect_model_registry.registry.maintenance.verify import verify
from tests.conftest import snapshot
from tests.registry import attacks_skops as attacks
from tests.registry.test_cli import pmr

ROOT = Path(__file__).resolve().parents[2]

# -- what this process opens -----------------------------------------------------------------------------------
_CANARIES: list[str] = []
_OPENED: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not _CANARIES or not args or not isinstance(args[0], str | bytes | os.PathLike):
        return
    path = os.path.realpath(os.fsdecode(args[0]))
    if path in _CANARIES:
        _OPENED.append(path)


sys.addaudithook(_audit)  # process-wide (hooks cannot be removed): it only looks at _CANARIES


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    """A secret file; every open of it in this process is recorded in ``_OPENED``."""
    path = tmp_path / "id_ed25519"
    path.write_text("-----BEGIN OPENSSH PRIVATE KEY----- canary")
    _CANARIES.append(os.path.realpath(path))
    _OPENED.clear()
    try:
        yield path
    finally:
        _CANARIES.clear()
        _OPENED.clear()


@pytest.fixture
def local(tmp_path: Path) -> Registry:
    return Registry.open(str(tmp_path / "registry"))


def fresh(mode: str, data: bytes, tmp_path: Path, canary: Path | None = None) -> tuple[dict[str, Any], str]:
    """Load ``data`` in a new process with the old (``old``, ``old-review``) or the new logic (``new``)."""
    path = tmp_path / f"payload-{mode}.skops"
    path.write_bytes(data)
    cmd = [sys.executable, "-m", "tests.registry.attacks_skops", mode, str(path)]
    if canary is not None:
        cmd += ["--canary", str(canary)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout


def stored_by_the_old_release(reg: Registry, data: bytes, monkeypatch: pytest.MonkeyPatch, *, reviewed: bool) -> str:
    """Register ``data`` as an older release did: with the old review and its recorded types, or with none.

    A bomb is stored unreviewed: the old review of it would take gigabytes in this process.
    """
    with monkeypatch.context() as m:
        # The review now reads a file object (the zip directory only); the old one took bytes.
        m.setattr(artifacts, "review_types", lambda fh, fmt: attacks.old_review(fh.read()) if reviewed else None)
        return reg.register("legacy", data, fmt="skops").uri


def refused_everywhere(
    reg: Registry,
    data: bytes,
    names: list[str],
    monkeypatch: pytest.MonkeyPatch,
    error: type[Exception] = UntrustedType,
) -> None:
    """Registration, load of a legacy copy, copy out of it and verify: all refuse ``data``, naming ``names``."""
    before = snapshot(reg)
    with pytest.raises(error) as info:
        reg.register("m", data, fmt="skops")
    assert snapshot(reg) == before  # no blob, no manifest, no event
    for name in names:
        assert name in str(info.value)
    uri = stored_by_the_old_release(reg, data, monkeypatch, reviewed=error is UntrustedType)
    with pytest.raises(error) as info:
        reg.load(uri)
    for name in names:
        assert name in str(info.value)
    if error is UntrustedType:
        assert trusted_types.GENERATOR in str(info.value)  # how an operator admits a name
    target = Registry.open(reg.store.uri + "-prod")
    with pytest.raises(error):
        copy_version(reg, uri, target)
    assert target.models() == []
    findings = [f for f in verify(reg).findings if f.kind in ("artifact_untrusted", "artifact_too_large")]
    kind = "artifact_too_large" if error is ArtifactCapExceeded else "artifact_untrusted"
    assert [(f.kind, f.severity) for f in findings] == [(kind, "error")]
    assert all(name in findings[0].problem for name in names)


# -- re-exported callables -------------------------------------------------------------------------------------
def test_reexported_callables(tmp_path: Path, local: Registry, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    # import_module("os").system("touch ...") through sklearn.utils.discovery.import_module.
    wire = tmp_path / "tripwire"
    data = attacks.import_module_runs_a_command(wire)
    old, _ = fresh("old", data, tmp_path)
    assert old["outcome"] == "loaded LogisticRegression" and wire.exists()  # the old release ran it
    wire.unlink()
    refused_everywhere(local, data, ["sklearn.utils.discovery.import_module as reduce"], monkeypatch)
    path = tmp_path / "model.skops"
    path.write_bytes(data)
    code, _, err = pmr(capsys, "--registry", str(tmp_path / "cli-registry"), "register", "m", str(path))
    assert code == 1 and "sklearn.utils.discovery.import_module" in err and "Traceback" not in err
    assert not wire.exists()

    # The re-export alone, as a dict's key type: imports any module (`this` prints the Zen of Python).
    data = attacks.import_module_imports_a_module("this")
    old, out = fresh("old", data, tmp_path)
    assert "this" in old["imported"] and "Beautiful is better than ugly" in out
    assert "this" not in sys.modules
    with pytest.raises(UntrustedType, match=r"sklearn\.utils\.discovery\.import_module as function"):
        deserialize(data, "skops")
    assert "this" not in sys.modules  # not imported: the review runs none of the file's code
    # Listed or vouched for, a re-export is still refused: it is not what its name says.
    assert "importlib.import_module" in str(trusted_types.identity_problem("sklearn.utils.discovery.import_module"))
    assert "numpy.fromfile" in str(trusted_types.identity_problem("numpy._core.multiarray.fromfile"))
    with pytest.raises(UntrustedType, match="never trusted"):
        deserialize(data, "skops", trusted=["sklearn.utils.discovery.import_module"])
    # Even a real class under a path that re-exports it: only its own module's name is exact.
    with pytest.raises(UntrustedType, match="re-export"):
        deserialize(data, "skops", trusted=["sklearn.linear_model.LogisticRegression"])


# -- reduce and method nodes -----------------------------------------------------------------------------------
def test_reduce_and_method_nodes(tmp_path: Path, local: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    # A method node reaches sklearn.os.system; numpy.fromfunction in a reduce node calls partial(system, cmd).
    for make in (attacks.method_reaches_os_system, attacks.reduce_calls_fromfunction):
        wire = tmp_path / f"tripwire-{make.__name__}"
        data = make(wire)
        old, _ = fresh("old", data, tmp_path)
        assert old["outcome"] == "loaded LogisticRegression" and wire.exists(), make.__name__
        wire.unlink()
        refused_everywhere(local, data, ["sklearn.os as method (reaching .system)"], monkeypatch)
        assert not wire.exists()
        local = Registry.open(str(tmp_path / f"registry-{make.__name__}"))

    # The kind decides, not only the name: names every list admits, used as calls, are refused.
    base = attacks.base_dump()
    check_array = ("sklearn.utils.validation", "check_array")
    cases = {
        "builtins.int as reduce: listed only as type": attacks.reduce_node("builtins", "int", attacks.json_node("7")),
        "check_array as reduce: listed only as function": attacks.reduce_node(*check_array, attacks.json_node(1)),
        "check_array as method (reaching .__globals__): listed only as function": attacks.method_node(
            attacks.function_node(*check_array), "__globals__"
        ),
        "functools.partial as reduce: listed only as partial": attacks.reduce_node(
            "functools", "partial", attacks.function_node(*check_array)
        ),
    }
    for expected, node in cases.items():
        data = attacks.with_attribute(base, "_extra", node)
        with pytest.raises(UntrustedType) as info:
            artifacts.review_types(data, "skops")
        assert any(expected in line for line in info.value.refused), info.value.refused
        # A caller cannot vouch for a call either: trusted= admits classes as instances only.
        with pytest.raises(UntrustedType):
            deserialize(data, "skops", trusted=["sklearn.linear_model._logistic.LogisticRegression"])
    assert not (trusted_types.CALLING_KINDS & {k for kinds in trusted_types.reviewed().values() for k in kinds})


# -- numpy file I/O under other module paths -------------------------------------------------------------------
def test_numpy_file_io_under_other_paths(
    tmp_path: Path, local: Registry, canary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[tuple[Callable[[Path], bytes], str]] = [
        (attacks.fromfile_reads, "numpy._core.multiarray.fromfile as reduce"),
        (attacks.fromfunction_reads, "numpy.fromfunction as reduce"),
    ]
    for make, name in reads:
        data = make(canary)
        old, _ = fresh("old", data, tmp_path, canary)
        assert old["outcome"] == "loaded LogisticRegression" and old["opened_canary"], make.__name__
        refused_everywhere(local, data, [name], monkeypatch)
        assert _OPENED == []  # registration, load, copy and verify read nothing
        local = Registry.open(str(tmp_path / f"registry-{make.__name__}"))
    wire = tmp_path / "written-by-memmap"
    data = attacks.memmap_writes(wire)
    old, _ = fresh("old", data, tmp_path)
    assert old["outcome"] == "loaded LogisticRegression" and wire.exists()
    wire.unlink()
    refused_everywhere(local, data, ["numpy._core.memmap.memmap as reduce"], monkeypatch)
    assert not wire.exists()


# -- memory amplification --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("member_bytes", "nodes", "cap"),
    [
        (15 * 1024**2, 100, "compression ratio"),  # one 15 MiB member of zeros, deflated to 15 KB
        (900 * 1024, 1700, "references to one member"),  # under the ratio floor: only the reference cap sees it
    ],
    ids=["ratio", "references"],
)
def test_memory_amplification(
    tmp_path: Path, local: Registry, monkeypatch: pytest.MonkeyPatch, member_bytes: int, nodes: int, cap: str
) -> None:
    data = attacks.one_member_many_nodes(member_bytes, nodes)
    assert len(data) < 300 * 1024
    old, _ = fresh("old-review", data, tmp_path)  # the old registration review alone
    assert old["outcome"].startswith("loaded") and old["peak_growth_mib"] > 1000, old
    new, _ = fresh("new", data, tmp_path)
    assert new["outcome"].startswith("refused ArtifactCapExceeded") and cap in new["outcome"], new
    assert new["peak_growth_mib"] < 100, new
    print(f"{cap}: {len(data)} bytes; peak growth old {old['peak_growth_mib']} MiB, new {new['peak_growth_mib']} MiB")
    refused_everywhere(local, data, [cap], monkeypatch, ArtifactCapExceeded)


# -- the MLflow import goes through the same review ------------------------------------------------------------
def test_mlflow_import_refuses_a_payload(tmp_path: Path) -> None:
    from prefect_model_registry.registry.interop.mlflow_import import import_mlflow
    from tests.registry.test_mlflow_trust import MLMODEL, FakeMlflow

    wire = tmp_path / "tripwire"
    flavor = b"flavors:\n  sklearn:\n    pickled_model: model.skops\n    serialization_format: skops\n"
    fake = FakeMlflow()
    try:
        fake.proxied("1", {"MLmodel": flavor, "model.skops": attacks.import_module_runs_a_command(wire)})
        fake.proxied("2", {"MLmodel": MLMODEL})
        reg = Registry.open(str(tmp_path / "registry"))
        report = import_mlflow(reg, fake.url)["m"]
    finally:
        fake.server.close()
    assert report.registered == {"2": 1} and "sklearn.utils.discovery.import_module" in report.skipped["1"]
    assert not wire.exists()


# -- the list --------------------------------------------------------------------------------------------------
def test_the_committed_list_matches_the_installed_scikit_learn() -> None:
    committed = json.loads((ROOT / "registry" / "core" / trusted_types.DATA_FILE).read_text())
    fresh_list = trusted_types_build.build()
    changes = trusted_types_build.differences(committed, fresh_list)
    assert changes == [], (
        f"the installed {fresh_list['generated_with']} changes the reviewed list (committed with "
        f"{committed['generated_with']}): {changes}; review them, then run `{trusted_types.GENERATOR}`"
    )
    print(f"reviewed list: {len(committed['names'])} names; left out {committed['left_out']}")


def test_every_entry_is_exact_and_resolves_to_itself() -> None:
    listed = trusted_types.reviewed()
    assert "sklearn.utils.validation.check_array" in listed and "functools.partial" in listed
    for name, kinds in listed.items():
        assert kinds <= trusted_types.KINDS - trusted_types.CALLING_KINDS - trusted_types.UNNAMED_KINDS, name
        for kind in kinds:
            assert trusted_types.admit(name, kind) is None, name
    # skops' own defaults are held to the same check, for the kind skops trusts each for.
    for kind, names in trusted_types.skops_defaults().items():
        for name in names:
            assert trusted_types.admit(name, kind) is None, (name, kind)
    assert trusted_types.admit("builtins.int", "reduce") == "listed only as type"
    assert trusted_types.admit("sklearn.linear_model", "object") == "not on the reviewed list"  # never a prefix


def test_a_module_named_by_an_unlisted_name_is_never_imported() -> None:
    assert "antigravity" not in sys.modules
    data = attacks.with_attribute(attacks.base_dump(), "_extra", attacks.function_node("antigravity", "fly"))
    with pytest.raises(UntrustedType, match=r"antigravity\.fly as function: not on the reviewed list"):
        deserialize(data, "skops")
    assert "antigravity" not in sys.modules


def test_a_caller_may_vouch_for_an_exact_class(local: Registry) -> None:
    x = np.random.default_rng(0).normal(size=(40, 2))
    search = GridSearchCV(Ridge(), {"alpha": [0.1, 1.0]}, cv=ShuffleSplit(2, random_state=0)).fit(x, x[:, 0])
    data = sio.dumps(search)
    name = "sklearn.model_selection._split.ShuffleSplit"
    with pytest.raises(UntrustedType, match=f"{name} as object: not on the reviewed list"):
        local.register("search", data, fmt="skops")
    loaded = deserialize(data, "skops", trusted=[name])
    assert (loaded.predict(x) == search.predict(x)).all()
    for never in ("builtins.eval", "numpy.load", "os.system", "sklearn.linear_model"):
        with pytest.raises(UntrustedType, match="never trusted"):
            deserialize(data, "skops", trusted=[name, never])


def test_categorical_hist_gradient_boosting_holds_only_listed_functions(local: Registry) -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=80), "c": pd.Categorical(rng.choice(["x", "y", "z"], 80))})
    y = (frame["c"] == "x").to_numpy().astype(int)
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", max_iter=5).fit(frame, y)
    mv = local.register("hgb", sio.dumps(model), fmt="skops")
    recorded = mv.artifact.trusted_types or []
    assert {"functools.partial", "sklearn.utils.validation.check_array"} <= set(recorded)
    assert (local.load(mv.uri).predict(frame) == model.predict(frame)).all()


# -- caps ------------------------------------------------------------------------------------------------------
def test_each_cap_names_itself_and_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    data = attacks.base_dump()
    skops_review.review(data)  # within every default cap
    caps = {
        "PMR_SKOPS_MAX_MEMBERS": ("2", "member count"),
        "PMR_SKOPS_MAX_UNCOMPRESSED_BYTES": ("1000", "total uncompressed size"),
        "PMR_SKOPS_MAX_SCHEMA_BYTES": ("100", "schema size"),
        "PMR_SKOPS_MAX_NODES": ("10", "node count"),
        "PMR_SKOPS_MAX_DEPTH": ("2", "nesting depth"),
    }
    for setting, (value, cap) in caps.items():
        with monkeypatch.context() as m:
            m.setenv(setting, value)
            with pytest.raises(ArtifactCapExceeded) as info:
                deserialize(data, "skops")
        assert (info.value.cap, info.value.setting) == (cap, setting)
        assert cap in str(info.value) and setting in str(info.value)
    monkeypatch.setenv("PMR_SKOPS_MAX_NODES", "many")
    with pytest.raises(InvalidMetadata, match="PMR_SKOPS_MAX_NODES"):
        deserialize(data, "skops")


def test_compression_ratio_spares_small_members_and_shared_arrays_pass(local: Registry) -> None:
    # Zeros compress about a thousandfold: a small member passes, a large one does not.
    small = StandardScaler().fit(np.zeros((2, 20_000)))  # 160 KB arrays
    mv = local.register("small", sio.dumps(small, compression=zipfile.ZIP_DEFLATED), fmt="skops")
    assert local.load(mv.uri).n_features_in_ == 20_000
    large = StandardScaler().fit(np.zeros((2, 300_000)))  # 2.4 MB arrays
    with pytest.raises(ArtifactCapExceeded, match="compression ratio"):
        local.register("large", sio.dumps(large, compression=zipfile.ZIP_DEFLATED), fmt="skops")
    assert local.register("large", sio.dumps(large), fmt="skops").version == 1  # stored, not compressed: fine

    # Many members just under the floor are held to the ratio as a whole.
    def many(schema: dict[str, Any]) -> None:
        attrs = schema["content"]
        attrs["content"]["_many"] = attacks.list_node(*(attacks.array_node(f"m{i}.npy", 10**9 + i) for i in range(3)))
        attrs["key_types"]["content"].append(attacks.type_node("builtins", "str"))

    members = {f"m{i}.npy": bytes(900 * 1024) for i in range(3)}
    data = attacks.edit(attacks.base_dump(), many, extra=members, deflate=frozenset(members))
    with pytest.raises(ArtifactCapExceeded, match="the archive as a whole"):
        local.register("many", data, fmt="skops")
    # One array held twice is written twice with one __id__: skops reads it once, and so it passes the cap of 1.
    model = attacks.base_model()
    model.shared_coef_ = model.coef_
    data = sio.dumps(model)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        schema = zf.read("schema.json").decode()
    coef_file = json.loads(schema)["content"]["content"]["coef_"]["file"]
    assert schema.count(coef_file) == 2
    assert (local.load(local.register("shared", data, fmt="skops").uri).shared_coef_ == model.coef_).all()


def test_not_a_skops_file_is_a_typed_refusal(local: Registry) -> None:
    for junk in (b"not a zip", attacks.edit(attacks.base_dump(), lambda s: s.update(__loader__="EvalNode"))):
        with pytest.raises(ArtifactRefused):
            local.register("m", junk, fmt="skops")
    with pytest.raises(UntrustedArtifact):  # the pre-existing error type still catches every refusal
        local.register("m", attacks.fromfile_reads(Path("/etc/passwd")), fmt="skops")
    assert local.models() == []


def test_reviewable_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    assert artifacts.reviewable("sklearn.tree._tree.Tree")
    assert artifacts.reviewable("sklearn.linear_model._logistic.LogisticRegression")
    for name in ("sklearn.utils.discovery.import_module", "numpy._core.multiarray.fromfile", "sklearn.", "sklearn.os"):
        assert not artifacts.reviewable(name), name
