"""No command follows a symlink out of the registry or writes a user's file through one (issue 27).

``pmr verify --repair --apply`` used to delete the files of whatever directory a symlinked ``.tmp`` pointed at;
``pmr dataset -o`` wrote through a dangling symlink, creating the file it named.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prefect_model_registry.registry import Lineage, Registry, VersionInfo
from prefect_model_registry.registry.cli import main
from prefect_model_registry.registry.errors import RegistryError
from tests.conftest import snapshot

OLD = 2 * 3600  # older than repair's grace period


def pmr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def age(path: Path) -> None:
    old = path.stat().st_mtime - OLD
    os.utime(path, (old, old), follow_symlinks=False)


def files(where: Path) -> dict[str, bytes]:
    return {str(p.relative_to(where)): p.read_bytes() for p in sorted(where.rglob("*")) if p.is_file()}


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    root = tmp_path / "reg"
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    Registry.open(str(root)).register("m", b"bytes", VersionInfo(lineage=Lineage(dataset_uri=str(data))), fmt="bytes")
    Registry.open(str(root)).flush()
    return root


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A directory outside the registry with files that repair must never touch."""
    outside = tmp_path / "home"
    outside.mkdir()
    for name in ("thesis.tex", "id_ed25519"):
        (outside / name).write_text(f"precious {name}")
        age(outside / name)
    return outside


def test_repair_never_deletes_through_a_symlinked_tmp(registry_dir: Path, elsewhere: Path, capsys) -> None:
    tmp = registry_dir / ".tmp"
    for leftover in tmp.iterdir():
        leftover.unlink()
    tmp.rmdir()
    tmp.symlink_to(elsewhere, target_is_directory=True)
    before = files(elsewhere)
    code, out, err = pmr(capsys, "--registry", str(registry_dir), "verify", "--repair", "--apply")
    assert files(elsewhere) == before, f"repair deleted files outside the registry\n{out}{err}"
    assert code in (0, 1) and "Traceback" not in err


def test_the_local_store_never_deletes_through_a_symlinked_directory(registry_dir: Path, elsewhere: Path) -> None:
    # Repair deletes keys it listed or computed (a hint, a claim, an index segment): none may lead outside.
    (registry_dir / "models" / "n").symlink_to(elsewhere, target_is_directory=True)
    before = files(elsewhere)
    store = Registry.open(str(registry_dir)).store
    with pytest.raises(RegistryError, match="symlink"):
        store.delete("models/n/thesis.tex")
    assert files(elsewhere) == before


def test_dataset_never_writes_through_a_dangling_symlink(registry_dir: Path, tmp_path: Path, capsys) -> None:
    victim = tmp_path / "home" / ".bashrc"  # does not exist yet: the link dangles
    victim.parent.mkdir(exist_ok=True)
    out = tmp_path / "restored.csv"
    out.symlink_to(victim)
    before = snapshot(Registry.open(str(registry_dir)))
    code, _, err = pmr(capsys, "--registry", str(registry_dir), "dataset", "m", "1", "-o", str(out))
    assert not victim.exists(), "the dataset was written through the symlink"
    assert code == 1 and "symlink" in err and "Traceback" not in err, err
    assert snapshot(Registry.open(str(registry_dir))) == before


def test_dataset_force_never_overwrites_through_a_symlink(registry_dir: Path, tmp_path: Path, capsys) -> None:
    victim = tmp_path / "authorized_keys"
    victim.write_text("ssh-ed25519 AAAA precious")
    out = tmp_path / "restored.csv"
    out.symlink_to(victim)
    code, _, err = pmr(capsys, "--registry", str(registry_dir), "dataset", "m", "1", "-o", str(out), "--force")
    assert victim.read_text() == "ssh-ed25519 AAAA precious"
    assert code == 1 and "symlink" in err, err


def test_dataset_still_writes_and_overwrites_a_plain_file(registry_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "restored.csv"
    assert pmr(capsys, "--registry", str(registry_dir), "dataset", "m", "1", "-o", str(out))[0] == 0
    assert out.read_text() == "a,b\n1,2\n"
    code, _, err = pmr(capsys, "--registry", str(registry_dir), "dataset", "m", "1", "-o", str(out))
    assert code == 2 and "--force" in err
    out.write_text("changed")
    assert pmr(capsys, "--registry", str(registry_dir), "dataset", "m", "1", "-o", str(out), "--force")[0] == 0
    assert out.read_text() == "a,b\n1,2\n"


def test_suite_init_never_writes_through_a_symlink(tmp_path: Path, capsys) -> None:
    import prefect_model_registry.flows.cli  # noqa: F401  (registers `pmr suite`)

    victim = tmp_path / "victim.yaml"
    out = tmp_path / "suite.yaml"
    out.symlink_to(victim)
    data = tmp_path / "d.csv"
    data.write_text("a,t\n1,0\n2,1\n")
    code, _, err = pmr(capsys, "suite", "init", str(data), "--target", "t", "-o", str(out))
    assert not victim.exists()
    assert code in (1, 2) and "symlink" in err, err


def test_scoring_output_never_writes_through_a_symlink(tmp_path: Path) -> None:
    import pandas as pd

    from prefect_model_registry.flows.scoring import write_frame
    from prefect_model_registry.registry.errors import RegistryError

    victim = tmp_path / "victim.csv"
    out = tmp_path / "scored.csv"
    out.symlink_to(victim)
    with pytest.raises(RegistryError, match="symlink"):
        write_frame(pd.DataFrame({"a": [1]}), str(out))
    assert not victim.exists()
