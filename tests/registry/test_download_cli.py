"""``pmr download`` and ``pmr dataset -o`` (issue 30): verified downloads on both backends, and the progress bar.

A download lands at its target only once its bytes hash to the manifest's SHA-256: a refusal (an existing file
without --force, a symlink, a corrupt blob) leaves the target as it was and no temporary file beside it.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from rich.console import Console

from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.cli.progress import BAR_MIN_BYTES, transfer_bar
from tests.registry.test_cli import pmr

MiB = 1024 * 1024


def _register(capsys: pytest.CaptureFixture[str], location: str, path: Path, name: str = "m") -> dict:
    """Register ``path`` through ``pmr --json register`` and return the manifest it prints."""
    code, out, err = pmr(
        capsys, "--registry", location, "--json", "register", name, str(path), "--allow-missing-dataset"
    )
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    """An opaque model file (format ``bytes``) of 1 MiB and a bit, not a whole number of chunks."""
    path = tmp_path / "model.bin"
    path.write_bytes(os.urandom(MiB + 12345))
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_download_round_trip_is_byte_identical(
    location: str, artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _register(capsys, location, artifact)
    out = tmp_path / "out" / "copy.bin"
    out.parent.mkdir()
    code, stdout, err = pmr(capsys, "--registry", location, "--json", "download", "models:/m/1", "-o", str(out))
    assert code == 0, err
    shown = json.loads(stdout)
    assert out.read_bytes() == artifact.read_bytes()
    assert shown["sha256"] == manifest["artifact"]["sha256"] and shown["bytes"] == artifact.stat().st_size
    assert shown["uri"] == "models:/m/1" and shown["out"] == str(out)
    assert _leftovers(out.parent) == []

    # The human form names the path and the full SHA-256; an alias resolves like any model URI.
    code, stdout, err = pmr(capsys, "--registry", location, "download", "m/latest", "-o", str(tmp_path / "again.bin"))
    assert code == 0, err
    assert str(tmp_path / "again.bin") in stdout and manifest["artifact"]["sha256"] in stdout.replace("\n", "")


def test_existing_file_is_refused_without_force_and_replaced_with_it(
    location: str, artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(capsys, location, artifact)
    out = tmp_path / "existing.bin"
    out.write_bytes(b"keep me")
    code, stdout, err = pmr(capsys, "--registry", location, "download", "models:/m/1", "-o", str(out))
    assert code != 0 and stdout == ""
    assert len(err.strip().splitlines()) == 1 and "--force" in err and "Traceback" not in err
    assert out.read_bytes() == b"keep me"
    assert _leftovers(tmp_path) == []

    code, _, err = pmr(capsys, "--registry", location, "download", "models:/m/1", "-o", str(out), "--force")
    assert code == 0, err
    assert out.read_bytes() == artifact.read_bytes()


@pytest.mark.parametrize("dangling", [True, False], ids=["dangling", "to-a-file"])
def test_symlink_at_the_target_is_refused(
    location: str, artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], dangling: bool
) -> None:
    _register(capsys, location, artifact)
    pointee = tmp_path / "pointee.txt"
    if not dangling:
        pointee.write_bytes(b"not yours")
    link = tmp_path / "link.bin"
    link.symlink_to(pointee)
    for extra in ([], ["--force"]):
        code, stdout, err = pmr(capsys, "--registry", location, "download", "models:/m/1", "-o", str(link), *extra)
        assert code != 0 and stdout == ""
        assert "symlink" in err and len(err.strip().splitlines()) == 1
        assert link.is_symlink() and os.readlink(link) == str(pointee)
        if dangling:
            assert not pointee.exists()
        else:
            assert pointee.read_bytes() == b"not yours"
        assert _leftovers(tmp_path) == []


def test_corrupt_blob_is_refused_and_leaves_no_file(
    location: str, artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _register(capsys, location, artifact)
    reg = Registry.open(location)
    mv = reg.get_version("m", 1)
    reg.store.put(mv.artifact.key, b"garbage")
    target = tmp_path / "out"
    target.mkdir()
    out = target / "model.bin"
    code, stdout, err = pmr(capsys, "--registry", location, "download", "models:/m/1", "-o", str(out))
    assert code != 0 and stdout == ""
    assert "corrupt" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert list(target.iterdir()) == []  # no partial file, no .part temporary

    # --force over an existing file: the file is left as it was.
    out.write_bytes(b"old")
    code, _, err = pmr(capsys, "--registry", location, "download", "models:/m/1", "-o", str(out), "--force")
    assert code != 0 and "corrupt" in err
    assert out.read_bytes() == b"old" and _leftovers(target) == []


def test_dataset_out_streams_the_snapshot(
    location: str, artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(5000)))
    code, _, err = pmr(capsys, "--registry", location, "register", "m", str(artifact), "--dataset", str(data))
    assert code == 0, err
    out = tmp_path / "restored.csv"
    code, stdout, err = pmr(capsys, "--registry", location, "--json", "dataset", "m", "1", "-o", str(out))
    assert code == 0, err
    shown = json.loads(stdout)
    assert out.read_bytes() == data.read_bytes()
    assert shown["bytes"] == data.stat().st_size and shown["out"] == str(out) and shown["version"] == "models:/m/1"

    code, _, err = pmr(capsys, "--registry", location, "dataset", "m", "1", "-o", str(out))
    assert code != 0 and "--force" in err
    out.write_text("changed")
    code, _, err = pmr(capsys, "--registry", location, "dataset", "m", "1", "-o", str(out), "--force")
    assert code == 0, err
    assert out.read_bytes() == data.read_bytes() and _leftovers(tmp_path) == []


def test_json_stays_parseable_for_a_large_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Above the bar's threshold, ``--json`` output is exactly one JSON document (no bar on stdout or stderr)."""
    location = str(tmp_path / "registry")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * MiB))
    manifest = _register(capsys, location, big)
    assert manifest["artifact"]["size"] == 9 * MiB
    out = tmp_path / "big.out"
    code, stdout, err = pmr(capsys, "--registry", location, "--json", "download", "models:/m/1", "-o", str(out))
    assert code == 0 and err == ""
    assert json.loads(stdout)["sha256"] == manifest["artifact"]["sha256"]
    assert out.read_bytes() == big.read_bytes()


def test_register_hashes_once_and_keys_retries_by_that_digest(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same command run again returns the same version; other bytes make a new one."""
    location = str(tmp_path / "registry")
    first = _register(capsys, location, artifact)
    again = _register(capsys, location, artifact)
    assert again["version"] == first["version"] == 1
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(1000))
    assert _register(capsys, location, other)["version"] == 2
    empty = tmp_path / "empty.bin"
    empty.touch()
    code, _, err = pmr(capsys, "--registry", location, "register", "m", str(empty))
    assert code == 2 and "empty" in err


def test_bar_is_drawn_on_a_terminal_only_above_the_threshold() -> None:
    """The bar helper draws each stage large enough, named by the stage, and nothing without a terminal."""
    screen = io.StringIO()
    with transfer_bar(Console(file=screen, force_terminal=True, width=100)) as progress:
        assert progress is not None
        progress("hashing", 0, BAR_MIN_BYTES - 1)  # too small to draw
        progress("uploading", 0, 9 * MiB)
        progress("uploading", 9 * MiB, 9 * MiB)
    drawn = screen.getvalue()
    assert "uploading" in drawn and "hashing" not in drawn

    with transfer_bar(Console(file=io.StringIO(), force_terminal=False)) as progress:
        assert progress is None
