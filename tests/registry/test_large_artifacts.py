"""Models of any size (issue 30): streamed, multipart, resumable, reused without re-upload, verified downloads.

The multipart threshold and part size are lowered (to S3's smallest part, 5 MiB, which SeaweedFS enforces as AWS
does) so the multipart path runs on files of a few tens of MiB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from prefect_model_registry.registry import Registry, VersionInfo
from prefect_model_registry.registry.core import keys
from prefect_model_registry.registry.core.retention import gc
from prefect_model_registry.registry.core.transfer import Source
from prefect_model_registry.registry.errors import IntegrityError, StoreUnavailable
from prefect_model_registry.registry.interop.copy import copy_version
from prefect_model_registry.registry.maintenance.repair import repair
from prefect_model_registry.registry.maintenance.verify import verify
from prefect_model_registry.registry.models import Lineage
from prefect_model_registry.registry.operations import reading
from tests.conftest import BUCKET, snapshot

PART = 5 * 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Multipart above 10 MiB, in 5 MiB parts, two at a time."""
    monkeypatch.setenv("PMR_MULTIPART_THRESHOLD", str(2 * PART))
    monkeypatch.setenv("PMR_MULTIPART_CHUNK", str(PART))
    monkeypatch.setenv("PMR_TRANSFER_CONCURRENCY", "2")
    monkeypatch.setattr(reading, "LOAD_IN_MEMORY", 1024)  # loads go through a verified file


def _file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def test_multipart_register_load_download_copy_and_snapshot(location: str, tmp_path: Path) -> None:
    reg = Registry.open(location)
    model = _file(tmp_path / "model.bin", 5 * PART + 123)
    data = _file(tmp_path / "train.csv", 3 * PART)
    info = VersionInfo(lineage=Lineage(dataset_uri=str(data)))
    seen: list[tuple[str, int, int]] = []
    parts: list[tuple[str, int]] = []
    if location.startswith("s3://"):
        reg.store._client.meta.events.register(  # type: ignore[attr-defined]
            "before-parameter-build.s3.UploadPart",
            lambda **kw: parts.append((kw["params"]["Key"], kw["params"]["PartNumber"])),
        )
    mv = reg.register_file("big", model, info, fmt="bytes", progress=lambda *a: seen.append(a))
    if location.startswith("s3://"):
        ours = sorted(n for key, n in parts if key.endswith(mv.artifact.sha256))
        assert ours == [1, 2, 3, 4, 5, 6]  # five full parts and the tail
    assert ("uploading", model.stat().st_size, model.stat().st_size) in seen
    assert mv.lineage.dataset_snapshot and mv.lineage.dataset_size == 3 * PART
    assert reg.load_bytes(mv.uri)[1] == model.read_bytes()
    assert reg.load(mv.uri) == model.read_bytes()
    out = tmp_path / "out.bin"
    reg.download(mv.uri, out)
    assert out.read_bytes() == model.read_bytes()
    reg.download_dataset(mv.uri, tmp_path / "data.csv")
    assert (tmp_path / "data.csv").read_bytes() == data.read_bytes()
    target = Registry.open(location + "-copy" if location.startswith("s3://") else tmp_path / "copy")
    fetched: list[str] = []
    real_get_file = reg.store.get_file

    def spy(key: str, *args: Any, **kwargs: Any) -> None:
        fetched.append(key)
        real_get_file(key, *args, **kwargs)

    reg.store.get_file = spy  # type: ignore[method-assign]
    copied = copy_version(reg, mv.uri, target)
    reg.store.get_file = real_get_file  # type: ignore[method-assign]
    # Within one S3 endpoint the server copies (nothing downloaded); between directories the bytes stream.
    streamed = {mv.artifact.key, keys.blob_key(str(mv.lineage.dataset_snapshot))}
    assert set(fetched) == (set() if location.startswith("s3://") else streamed)
    assert target.load_bytes(copied.uri)[1] == model.read_bytes()
    assert target.load_dataset(copied.uri) == data.read_bytes()
    assert verify(reg).ok and verify(target).ok


def test_a_large_skops_model_loads_through_a_verified_file(location: str) -> None:
    reg = Registry.open(location)
    scaler = StandardScaler().fit(np.random.default_rng(0).normal(size=(2, 600_000)))
    mv = reg.register_model("scaler", scaler)  # 3 arrays of 4.8 MB: a multipart upload on S3
    assert mv.artifact.size > 2 * PART
    loaded = reg.load(mv.uri)
    assert np.array_equal(loaded.mean_, scaler.mean_)


def test_a_stream_is_spooled_and_registered(location: str, tmp_path: Path) -> None:
    reg = Registry.open(location)
    model = _file(tmp_path / "m.bin", 3 * PART)
    with open(model, "rb") as fh:
        mv = reg.register("streamed", fh, fmt="bytes")
    assert reg.load_bytes(mv.uri)[1] == model.read_bytes()


def test_large_bytes_in_hand_go_in_parts(location: str) -> None:
    reg = Registry.open(location)
    parts: list[int] = []
    if location.startswith("s3://"):
        events = reg.store._client.meta.events  # type: ignore[attr-defined]
        events.register("before-parameter-build.s3.UploadPart", lambda **kw: parts.append(kw["params"]["PartNumber"]))
    data = os.urandom(3 * PART)
    mv = reg.register("inmemory", data, fmt="bytes")
    assert reg.load_bytes(mv.uri)[1] == data
    assert sorted(parts) == ([1, 2, 3] if location.startswith("s3://") else [])


def test_a_file_changed_after_hashing_is_refused_and_nothing_is_written(location: str, tmp_path: Path) -> None:
    reg = Registry.open(location)
    reg.register("m", b"first", fmt="bytes")
    model = _file(tmp_path / "m.bin", 4 * PART)
    source = Source.of_path(model)  # hashed now
    model.write_bytes(os.urandom(4 * PART))  # then changed before it is sent
    before = snapshot(reg)
    with pytest.raises(IntegrityError, match="changed while"):
        reg.register("m", source, fmt="bytes")
    assert snapshot(reg) == before


def test_a_reused_blob_is_not_sent_again(location: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = Registry.open(location)
    model = _file(tmp_path / "m.bin", 5 * PART)
    first = reg.register_file("a", model, fmt="bytes")
    sent: list[str] = []
    real = reg.store.put_file
    monkeypatch.setattr(reg.store, "put_file", lambda key, *a, **k: (sent.append(key), real(key, *a, **k)))
    second = reg.register_file("b", model, fmt="bytes")
    assert second.artifact.key == first.artifact.key and sent == []
    assert reg.store.exists(keys.blob_use_key(first.artifact.sha256))  # the marker retention reads


def test_a_reused_blob_survives_a_gc_racing_its_registration(location: str, tmp_path: Path) -> None:
    reg = Registry.open(location)
    old = _file(tmp_path / "old.bin", 3 * PART)
    reg.register_file("a", old, fmt="bytes")  # v1: its blob becomes unreferenced once v1 is deleted
    reg.register("a", b"v2", fmt="bytes")
    assert gc(reg, "a", keep_last=1, apply=True, grace_s=3600).deleted == [1]
    time.sleep(3)  # the blob is now older than the 2 s grace period used below
    blob = keys.blob_key(Source.of_path(old).digest)
    at_manifest, go_on = threading.Event(), threading.Event()
    store = reg.store
    real_put = store.put

    def paused_put(key: str, data: bytes, **kwargs: Any) -> str:
        if key.startswith(keys.versions_prefix("b")):  # the reusing registration is about to publish
            at_manifest.set()
            go_on.wait(30)
        return real_put(key, data, **kwargs)

    store.put = paused_put  # type: ignore[method-assign]
    done: dict[str, Any] = {}
    racer = threading.Thread(target=lambda: done.update(mv=reg.register_file("b", old, fmt="bytes")))
    racer.start()
    assert at_manifest.wait(30)
    swept = gc(reg, "a", keep_last=1, apply=True, grace_s=2)  # finishes the sweep of v1's bytes
    go_on.set()
    racer.join(30)
    store.put = real_put  # type: ignore[method-assign]
    assert blob in swept.blobs_young and blob not in swept.blobs_deleted  # the marker kept it
    assert reg.load_bytes(done["mv"].uri)[1] == old.read_bytes()


def test_a_reused_blob_swept_before_the_manifest_landed_is_sent_again(location: str, tmp_path: Path) -> None:
    reg = Registry.open(location)
    model = _file(tmp_path / "m.bin", 3 * PART)
    first = reg.register_file("a", model, fmt="bytes")
    store, real_put = reg.store, reg.store.put

    def sweep_then_put(key: str, data: bytes, **kwargs: Any) -> str:
        if key.startswith(keys.versions_prefix("b")):
            store.delete(first.artifact.key)  # a sweep that missed the marker, just before the manifest
        return real_put(key, data, **kwargs)

    store.put = sweep_then_put  # type: ignore[method-assign]
    second = reg.register_file("b", model, fmt="bytes")
    store.put = real_put  # type: ignore[method-assign]
    assert reg.load_bytes(second.uri)[1] == model.read_bytes()  # looked at again after publishing, and re-sent


def test_the_cache_keeps_large_artifacts_as_files(
    location: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PMR_CACHE_DIR", str(tmp_path / "cache"))
    reg = Registry.open(location)
    model = _file(tmp_path / "m.bin", 3 * PART)
    mv = reg.register_file("m", model, fmt="pickle")
    reg.download(mv.uri, tmp_path / "first.bin")
    cached = reg.cache.path(mv.artifact.sha256)  # type: ignore[union-attr]
    assert cached.read_bytes() == model.read_bytes()
    reg.store.delete(mv.artifact.key)  # served from the cache from now on
    reg.download(mv.uri, tmp_path / "second.bin")
    assert (tmp_path / "second.bin").read_bytes() == model.read_bytes()
    cached.write_bytes(b"tampered")  # a bad entry is dropped, never served
    with pytest.raises(IntegrityError, match="missing"):
        reg.download(mv.uri, tmp_path / "third.bin")
    assert not cached.exists() and not (tmp_path / "third.bin").exists()


def test_two_registrations_of_the_same_large_file_at_once_both_land(location: str, tmp_path: Path) -> None:
    model = _file(tmp_path / "m.bin", 4 * PART)
    regs = [Registry.open(location), Registry.open(location)]  # two clients, as two processes would be
    found: dict[str, Any] = {}

    def register(i: int) -> None:
        try:
            found[f"m{i}"] = regs[i].register_file(f"m{i}", model, fmt="bytes")
        except Exception as exc:
            found[f"m{i}"] = exc

    threads = [threading.Thread(target=register, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(not isinstance(v, Exception) for v in found.values()), found
    assert {mv.artifact.key for mv in found.values()} == {found["m0"].artifact.key}
    assert regs[0].load_bytes("models:/m1/1")[1] == model.read_bytes()
    assert regs[0].store.unfinished_uploads() == []


def test_a_download_cut_short_leaves_no_file(location: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = Registry.open(location)
    mv = reg.register_file("m", _file(tmp_path / "m.bin", 4 * PART), fmt="bytes")

    def cut(key: str, path: Path, **kwargs: Any) -> None:
        path.write_bytes(b"half of it")
        raise StoreUnavailable("connection reset")

    monkeypatch.setattr(reg.store, "get_file", cut)
    target = tmp_path / "out" / "model.bin"
    target.parent.mkdir()
    with pytest.raises(StoreUnavailable):
        reg.download(mv.uri, target)
    assert list(target.parent.iterdir()) == []  # neither the target nor a partial file


def test_a_corrupted_blob_is_refused_and_nothing_is_written(location: str, tmp_path: Path) -> None:
    reg = Registry.open(location)
    mv = reg.register_file("m", _file(tmp_path / "m.bin", 4 * PART), fmt="bytes")
    reg.store.put(mv.artifact.key, os.urandom(4 * PART))  # same size, other bytes
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(IntegrityError, match="corrupt"):
        reg.download(mv.uri, out / "model.bin")
    assert list(out.iterdir()) == []
    with pytest.raises(IntegrityError):
        reg.load(mv.uri)


_KILLED_AFTER_TWO_PARTS = """
import os, sys
from prefect_model_registry.registry import Registry

def stop_after_two_parts(stage, done, total):
    if stage == "uploading" and done >= 2 * {part}:
        os._exit(9)  # killed mid-upload: no cleanup runs

Registry.open(sys.argv[1]).register_file("big", sys.argv[2], fmt="bytes", operation_key="nightly-7",
                                         progress=stop_after_two_parts)
"""

_RETRY_COUNTING_PARTS = """
import json, sys
from prefect_model_registry.registry import Registry

reg = Registry.open(sys.argv[1])
sent = []
events = reg.store._client.meta.events
events.register("before-parameter-build.s3.UploadPart", lambda **kw: sent.append(kw["params"]["PartNumber"]))
mv = reg.register_file("big", sys.argv[2], fmt="bytes", operation_key="nightly-7")
print(json.dumps({{"version": mv.version, "sent": sent}}))
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PMR_TRANSFER_CONCURRENCY": "1"}  # parts in order, one at a time
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


def test_a_killed_upload_resumes_from_another_process_sending_only_missing_parts(
    s3_server: Any, tmp_path: Path
) -> None:
    location = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    model = _file(tmp_path / "model.bin", 5 * PART)
    killed = _python(_KILLED_AFTER_TWO_PARTS.format(part=PART), location, str(model))
    assert killed.returncode == 9, killed.stderr
    reg = Registry.open(location)
    [(name, _)] = reg.store.unfinished_uploads()
    assert name.startswith(keys.BLOBS)
    assert any(f.kind == "upload_unfinished" for f in verify(reg).findings)
    retry = _python(_RETRY_COUNTING_PARTS.format(), location, str(model))
    assert retry.returncode == 0, retry.stderr
    answer = json.loads(retry.stdout.strip().splitlines()[-1])
    assert answer == {"version": 1, "sent": [3, 4, 5]}  # parts 1 and 2 were on the server already
    assert reg.load_bytes("models:/big/1")[1] == model.read_bytes()
    assert reg.store.unfinished_uploads() == []


def test_an_abandoned_upload_is_reported_and_aborted_by_repair_and_gc(s3_server: Any, tmp_path: Path) -> None:
    location = f"s3://{BUCKET}/{uuid.uuid4().hex}"
    model = _file(tmp_path / "model.bin", 5 * PART)
    assert _python(_KILLED_AFTER_TWO_PARTS.format(part=PART), location, str(model)).returncode == 9
    reg = Registry.open(location)
    assert len(reg.store.unfinished_uploads()) == 1
    assert repair(reg, apply=True, grace_s=3600) == [] or reg.store.unfinished_uploads()  # young: left alone
    actions = repair(reg, apply=True, grace_s=0)
    assert [a["action"] for a in actions if a["key"].startswith(keys.BLOBS)] == ["abort"]
    assert reg.store.unfinished_uploads() == []
    assert _python(_KILLED_AFTER_TWO_PARTS.format(part=PART), location, str(model)).returncode == 9
    reg.register("big", b"other", fmt="bytes")
    result = gc(reg, "big", keep_last=5, apply=True, grace_s=0)
    assert len(result.uploads_aborted) == 1 and reg.store.unfinished_uploads() == []


# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child of a big pytest process would report the
# parent's size. VmHWM belongs to the new process image. The baseline is taken after importing what the skops
# review imports to check what each name resolves to (scikit-learn, SciPy: about 190 MiB whatever the file's size).
_MEMORY = """
import json, sys
if sys.argv[3] == "skops":
    import skops.io, sklearn.preprocessing
from prefect_model_registry.registry import Registry

def hwm():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024

reg = Registry.open(sys.argv[1])
base = hwm()
mv = reg.register_file("big", sys.argv[2], fmt=sys.argv[3])
reg.flush()
print(json.dumps({"size": mv.artifact.size, "base_mib": base, "peak_mib": hwm()}))
"""


@pytest.mark.parametrize("fmt", ["bytes", "skops"])
def test_a_512_mib_registration_holds_its_parts_not_the_file(s3_server: Any, tmp_path: Path, fmt: str) -> None:
    size = 512 * 1024**2
    path = tmp_path / f"model.{fmt}"
    if fmt == "bytes":
        with open(path, "wb") as fh:
            for _ in range(size // (16 * 1024**2)):
                fh.write(os.urandom(16 * 1024**2))
    else:
        scaler = StandardScaler()
        scaler.mean_ = np.random.default_rng(0).random(size // 8)  # a 512 MiB array in the zip
        import skops.io as sio

        sio.dump(scaler, path)
        del scaler
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMR_MULTIPART") and k != "PMR_TRANSFER_CONCURRENCY"}
    done = subprocess.run(
        [sys.executable, "-c", _MEMORY, f"s3://{BUCKET}/{uuid.uuid4().hex}", str(path), fmt],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["size"] >= size
    # Default settings: 4 parts of 8 MiB in flight. The old code held the file twice (2,112 MiB for 1 GiB).
    assert found["peak_mib"] - found["base_mib"] < 128, found
    # The whole process: 256 MiB for bytes (measured 112); a skops file adds what the review imports (measured 312).
    assert found["peak_mib"] < (256 if fmt == "bytes" else 384), found
