"""``pmr`` end to end: tables, JSON, exit codes 0 / 1 / 2, one readable error line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import skops.io as sio
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from prefect_model_registry.registry import Registry
from prefect_model_registry.registry.cli import main
from prefect_model_registry.registry.core.lineage import fingerprint_bytes
from tests.conftest import snapshot


def pmr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    X, y = load_iris(return_X_y=True)
    path = tmp_path / "model.skops"
    sio.dump(LogisticRegression(max_iter=500).fit(X, y), path)
    return path


def test_register_promote_rollback_flow(location: str, model_file: Path, tmp_path: Path, capsys) -> None:
    r = ["--registry", location]
    data = tmp_path / "iris.csv"
    data.write_text("a,b\n1,2\n")
    code, out, _ = pmr(
        capsys,
        *r,
        "--json",
        "register",
        "iris",
        str(model_file),
        "--metric",
        "accuracy=0.97",
        "--param",
        "C=1.0",
        "--param",
        "solver=lbfgs",
        "--dataset",
        str(data),
        "--description",
        "notebook model",
    )
    assert code == 0
    manifest = json.loads(out)
    assert manifest["version"] == 1 and manifest["metrics"] == {"accuracy": 0.97}
    assert manifest["params"] == {"C": 1.0, "solver": "lbfgs"}
    assert manifest["lineage"]["dataset_uri"] == str(data) and manifest["lineage"]["python_version"]
    assert manifest["lineage"]["dataset_fingerprint"] == fingerprint_bytes(data.read_bytes())
    assert pmr(capsys, *r, "register", "iris", str(model_file), "-m", "accuracy=0.98")[0] == 0
    for v in ("1", "2"):
        assert pmr(capsys, *r, "promote", "iris", v, "--to", "staging", "--reason", "gates ok")[0] == 0
        assert pmr(capsys, *r, "promote", "iris", v, "--to", "production", "--reason", "approved")[0] == 0
    code, out, _ = pmr(capsys, *r, "--json", "show", "iris@production")
    assert code == 0 and json.loads(out)["version"] == 2
    assert pmr(capsys, *r, "alias", "iris", "champion", "2")[0] == 0
    code, out, _ = pmr(capsys, *r, "rollback", "iris", "--reason", "latency regression")
    assert code == 0 and "rolled back v2 -> v1" in out
    code, out, _ = pmr(capsys, *r, "models")
    assert code == 0 and "iris" in out and "champion→v2" in out
    code, out, _ = pmr(capsys, *r, "--json", "versions", "iris")
    assert [(v["version"], v["stage"]) for v in json.loads(out)] == [(2, "archived"), (1, "production")]
    code, out, _ = pmr(capsys, *r, "--json", "history", "iris")
    events = json.loads(out)
    assert events[-1]["type"] == "rolled_back" and events[-1]["reason"] == "latency regression"
    code, out, _ = pmr(capsys, *r, "history", "iris")
    assert "staging -> production" in out and "latency regression" in out
    code, out, _ = pmr(capsys, *r, "--json", "lineage", "iris", "1")
    assert json.loads(out)[0]["dataset_uri"] == str(data)
    code, out, _ = pmr(capsys, *r, "verify")
    assert code == 0 and out.startswith("OK")
    assert Registry.open(location).load("iris@production").predict([[5.1, 3.5, 1.4, 0.2]])[0] == 0
    assert pmr(capsys, *r, "register", "iris", str(model_file), "-m", "accuracy=0.99")[0] == 0
    code, out, _ = pmr(capsys, *r, "promote", "iris", "3", "--to", "production", "--through-staging", "--reason", "x")
    assert code == 0 and "v3 none -> staging -> production (archived v1)" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["register", "../x", "MODEL"], 2, "invalid model name"),
        (["register", "m", "MODEL", "--metric", "auc=nan"], 2, "finite"),
        (["register", "m", "MODEL", "--metric", "auc"], 2, "KEY=VALUE"),
        (["register", "m", "/nonexistent/model.skops"], 2, "does not exist"),
        (["show", "models:/m"], 2, "malformed model URI"),
        (["show", "m/1"], 1, "no model named 'm'"),
        (["promote", "m", "1", "--to", "production", "--reason", "x"], 1, "no model"),
        (["promote", "m", "1", "--to", "prod", "--reason", "x"], 2, "unknown stage"),
        (["promote", "m", "1", "--reason", "x"], 2, "--to"),
        (["rollback", "m", "--reason", "x"], 1, "no model"),
    ],
)
def test_errors_are_one_line_with_exit_code(location: str, model_file: Path, capsys, args, code, message) -> None:
    before = snapshot(Registry.open(location))
    args = [str(model_file) if a == "MODEL" else a for a in args]
    got, _out, err = pmr(capsys, "--registry", location, *args)
    assert got == code
    assert message in err
    assert "Traceback" not in err
    assert snapshot(Registry.open(location)) == before


def test_refused_promotion_exits_1(tmp_path: Path, model_file: Path, capsys) -> None:
    r = ["--registry", str(tmp_path / "reg")]
    pmr(capsys, *r, "register", "iris", str(model_file))
    code, _, err = pmr(capsys, *r, "promote", "iris", "1", "--to", "production", "--reason", "skip staging")
    assert code == 1 and "cannot go from none to production" in err


def test_verify_exits_1_on_tampering(tmp_path: Path, model_file: Path, capsys) -> None:
    r = ["--registry", str(tmp_path / "reg")]
    pmr(capsys, *r, "register", "iris", str(model_file))
    blob = next((tmp_path / "reg" / "blobs" / "sha256").iterdir())
    blob.write_bytes(blob.read_bytes() + b"!")
    code, out, _ = pmr(capsys, *r, "verify")
    assert code == 1 and "altered" in out and "PROBLEMS FOUND" in out


def test_console_script_prints_one_line_for_a_missing_bucket(s3_server) -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "pmr"), "--registry", "s3://no-such-bucket-x/p", "models"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "no-such-bucket-x" in proc.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "refused the credentials"),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "unreachable"),
    ],
)
def test_console_script_store_failures_are_one_line_exit_1(s3_server, env: dict[str, str], message: str) -> None:
    import os

    proc = subprocess.run(
        [str(Path(sys.executable).parent / "pmr"), "--registry", "s3://pmr-tests/cli-failures", "models"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr and "Traceback" not in proc.stderr


def test_versions_shows_a_blocked_version_and_why(tmp_path: Path, capsys) -> None:
    from prefect_model_registry.registry import VersionInfo

    reg = Registry.open(str(tmp_path / "reg"))
    failed = {"gate": "thresholds", "passed": False, "checks": [], "summary": {}}
    reg.register_model("m", LogisticRegression(), VersionInfo(reports={"thresholds": failed}), operation_key="k1")
    reg.register_model("m", LogisticRegression(), VersionInfo(), operation_key="k2")
    code, out, _ = pmr(capsys, "--registry", str(tmp_path / "reg"), "versions", "m")
    assert code == 0 and "blocked: gate:thresholds" in out
    code, out, _ = pmr(capsys, "--registry", str(tmp_path / "reg"), "--json", "versions", "m")
    rows = {row["version"]: row["blocked"] for row in json.loads(out)}
    assert rows == {1: ["gate:thresholds"], 2: []}
