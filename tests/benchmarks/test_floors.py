"""The bare S3 floors (benchmarks/floors.py) do the requests they claim, so the README's ratios stand on them."""

from __future__ import annotations

import json
import uuid

from benchmarks import floors
from benchmarks._worker import CONTENDERS, PER_CONTENDER
from prefect_model_registry.registry.store.s3 import S3Store
from tests.conftest import BUCKET
from tests.seaweed import SeaweedServer


def test_sequential_floor_writes_each_version_once_per_write(s3_server: SeaweedServer) -> None:
    prefix = uuid.uuid4().hex
    rate = floors.sequential_rate(s3_server.env(), BUCKET, prefix, 2, count=5)
    store = S3Store(BUCKET, prefix)
    assert rate > 0
    assert sorted(store.list("seq/")) == [f"seq/{w}/{n:08d}" for w in (0, 1) for n in range(1, 6)]


def test_register_floor_uploads_then_writes(s3_server: SeaweedServer) -> None:
    prefix = uuid.uuid4().hex
    assert floors.register_ms(s3_server.env(), BUCKET, prefix, 1, repeats=3) > 0
    store = S3Store(BUCKET, prefix)
    assert len(store.get("blob/0").data) == floors.MIB
    assert sorted(store.list("rec/")) == [f"rec/0/{n:08d}" for n in range(3)]


def test_races_give_every_registration_exactly_one_number(s3_server: SeaweedServer) -> None:
    prefix = uuid.uuid4().hex
    assert floors.race(s3_server.env(), BUCKET, f"{prefix}/race") > 0
    store = S3Store(BUCKET, prefix)
    assert len(list(store.list("race/k/"))) == CONTENDERS * PER_CONTENDER  # one key per win

    assert floors.race(s3_server.env(), BUCKET, f"{prefix}/comb", floors._combining_worker) > 0
    entries = sorted(store.list("comb/log/"))
    assert entries == [f"comb/log/{n:08d}" for n in range(1, len(entries) + 1)]  # a dense log
    numbered = [d for key in entries for d in json.loads(store.get(key).data)]
    assert len(numbered) == len(set(numbered)) == CONTENDERS * PER_CONTENDER
