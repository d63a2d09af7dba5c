"""Lineage of a team's own code and checks: the trainer's file, distribution and git state, the suite, thresholds
and config hashes, recorded by the real retraining flow and shown by ``pmr lineage``, ``pmr diff``, the model card
and the dashboard (real git in a temporary repository, real scikit-learn, real Great Expectations, Prefect harness).
"""

from __future__ import annotations

import hashlib
import html
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from markdown_it import MarkdownIt
from starlette.testclient import TestClient

from prefect_model_registry.flows.core.approval import ApprovalPolicy
from prefect_model_registry.flows.core.config import RetrainConfig
from prefect_model_registry.flows.core.evidence import lineage_markdown, model_card
from prefect_model_registry.flows.pipeline import retrain
from prefect_model_registry.registry import Lineage, Registry, VersionInfo
from prefect_model_registry.registry.cli import main
from prefect_model_registry.registry.dashboard.app import create_app
from prefect_model_registry.registry.models import ModelVersion, canonical_json
from prefect_model_registry.validations import profile
from tests.flows.conftest import DATA

pytestmark = pytest.mark.usefixtures("prefect_api")

CHURN = str(DATA / "churn.csv")
PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
EVIL = "</script><img src=x onerror=alert(1)>[x](javascript:alert(1))"

TRAINER = '''
"""The team's trainer, in its own git repository."""
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def fit(frame, target, params):
    X, y = frame.drop(columns=[target]), frame[target]
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))
    features = ColumnTransformer([
        ("numeric", numeric, make_column_selector(dtype_include="number")),
        ("categorical", categorical, make_column_selector(dtype_exclude="number")),
    ])
    return Pipeline([("features", features), ("model", LogisticRegression(C=C, max_iter=500))]).fit(X, y)
'''


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "team", "GIT_AUTHOR_EMAIL": "t@example.org"}
    env |= {"GIT_COMMITTER_NAME": "team", "GIT_COMMITTER_EMAIL": "t@example.org", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def forget(package: str) -> None:
    """Drop the package from this process's imports, so the next run imports the file as it is now."""
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]


@dataclass
class TeamRepo:
    """A team's training code in a git repository of its own, installed as the distribution ``package`` 1.4.2."""

    root: Path
    package: str
    suite: Path
    thresholds: Path

    @property
    def train_py(self) -> Path:
        return self.root / self.package / "train.py"

    @property
    def spec(self) -> str:
        return f"{self.package}.train:fit"

    def write_trainer(self, c: float) -> None:
        self.train_py.write_text(TRAINER.replace("C=C", f"C={c}"))


@pytest.fixture(scope="module")
def team_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamRepo]:
    """The repository (one commit: trainer and package metadata) on sys.path; its trainer module allowed."""
    root = tmp_path_factory.mktemp("team-code")
    package = f"teamml_{uuid.uuid4().hex[:8]}"
    (root / package).mkdir()
    (root / package / "__init__.py").write_text("")
    # What an install leaves beside the package: importlib.metadata finds the distribution and its version.
    info = root / f"{package}-1.4.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.4.2\n")
    (info / "top_level.txt").write_text(f"{package}\n")
    checks = tmp_path_factory.mktemp("team-checks")
    suite, thresholds = checks / "churn.yaml", checks / "churn-thresholds.yaml"
    frame = pd.read_csv(CHURN)
    suite.write_text(profile.suite_yaml(profile.profile_suite(frame, target="churned", name="churn"), CHURN))
    thresholds.write_text(yaml.safe_dump({"absolute": {"roc_auc": {"min": 0.6}}}))
    repo = TeamRepo(root, package, suite, thresholds)
    repo.write_trainer(0.5)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "trainer")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root))
        mp.setenv("PMR_TRAINER_MODULES", f"{package}.train")
        yield repo
    forget(package)


@dataclass
class Trained:
    registry: str
    model: str
    configs: list[RetrainConfig]
    commits: list[str]
    trainer_hashes: list[str]
    threshold_hashes: list[str]


@pytest.fixture(scope="module")
def trained(team_repo: TeamRepo, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Two versions by the real flow: v1 from the first commit, v2 after a committed change and new thresholds."""
    registry = str(tmp_path_factory.mktemp("registry") / "reg")
    model = f"churn-{uuid.uuid4().hex[:8]}"
    out = Trained(registry, model, [], [], [], [])
    for c, floor in ((0.5, 0.6), (0.8, 0.55)):
        if c != 0.5:  # the team commits a change to its trainer and loosens a threshold
            team_repo.write_trainer(c)
            git(team_repo.root, "commit", "-q", "-am", f"C={c}")
            team_repo.thresholds.write_text(yaml.safe_dump({"absolute": {"roc_auc": {"min": floor}}}))
            forget(team_repo.package)
        cfg = RetrainConfig(
            model_name=model,
            dataset_uri=CHURN,
            target="churned",
            suite=str(team_repo.suite),
            thresholds=str(team_repo.thresholds),
            trainer=team_repo.spec,
            registry=registry,
            approval=ApprovalPolicy(required_for=[]),
        )
        state = retrain(cfg, return_state=True)
        # v2 may be held back by champion/challenger: blocked or not, it is registered with its lineage.
        assert state.is_completed() or "registered but blocked" in str(state.message), state.message
        out.configs.append(cfg)
        out.commits.append(git(team_repo.root, "rev-parse", "HEAD"))
        out.trainer_hashes.append(sha256_of(team_repo.train_py))
        out.threshold_hashes.append(sha256_of(team_repo.thresholds))
    return out


def version(trained: Trained, number: int) -> ModelVersion:
    return Registry.open(trained.registry).get_version(trained.model, number)


def pmr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return int(info.value.code or 0), capsys.readouterr().out


def test_the_flow_records_the_trainer_file_distribution_and_git_commit(team_repo: TeamRepo, trained: Trained) -> None:
    for number in (1, 2):
        lin = version(trained, number).lineage
        assert lin.trainer == team_repo.spec
        assert lin.trainer_sha256 == trained.trainer_hashes[number - 1]
        assert lin.trainer_distribution == team_repo.package and lin.trainer_distribution_version == "1.4.2"
        assert lin.trainer_commit == trained.commits[number - 1]
        assert lin.trainer_dirty is False  # importing the trainer left byte code, which is not a change
    assert trained.commits[0] != trained.commits[1] and trained.trainer_hashes[0] != trained.trainer_hashes[1]


def test_the_flow_records_the_suite_thresholds_and_config_it_used(team_repo: TeamRepo, trained: Trained) -> None:
    for number in (1, 2):
        lin = version(trained, number).lineage
        cfg = trained.configs[number - 1]
        assert lin.suite == str(team_repo.suite) and lin.suite_sha256 == sha256_of(team_repo.suite)
        assert lin.thresholds == str(team_repo.thresholds)
        assert lin.thresholds_sha256 == trained.threshold_hashes[number - 1]
        assert lin.config_sha256 == hashlib.sha256(canonical_json(cfg.model_dump(mode="json"))).hexdigest()
    assert version(trained, 1).lineage.thresholds_sha256 != version(trained, 2).lineage.thresholds_sha256


def test_untracked_and_modified_files_make_the_trainer_repository_dirty(team_repo: TeamRepo, trained: Trained) -> None:
    from prefect_model_registry.registry.core.lineage import trainer_code

    clean = trainer_code(team_repo.spec)
    assert clean["trainer_commit"] == trained.commits[-1] and clean["trainer_dirty"] is False
    # Byte code beside the module (no .gitignore in this repository) is not a change to the code.
    cache = team_repo.root / team_repo.package / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "train.cpython-312.pyc").write_bytes(b"\x00")
    assert trainer_code(team_repo.spec)["trainer_dirty"] is False

    helper = team_repo.root / team_repo.package / "features.py"
    helper.write_text("COLUMNS = ['tenure']\n")  # untracked: never added, never committed
    untracked = trainer_code(team_repo.spec)
    assert untracked["trainer_dirty"] is True and untracked["trainer_commit"] == trained.commits[-1]
    helper.unlink()
    assert trainer_code(team_repo.spec)["trainer_dirty"] is False

    before = team_repo.train_py.read_bytes()
    team_repo.train_py.write_bytes(before + b"\n# tuned by hand\n")
    try:
        modified = trainer_code(team_repo.spec)
        assert modified["trainer_dirty"] is True
        assert modified["trainer_sha256"] == sha256_of(team_repo.train_py) != trained.trainer_hashes[-1]
    finally:
        team_repo.train_py.write_bytes(before)


def test_a_trainer_outside_git_records_its_hash_and_no_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect_model_registry.registry.core.lineage import trainer_code

    package = f"loose_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("def fit(frame, target, params):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # tmp_path may sit inside some git work tree
    try:
        code = trainer_code(f"{package}:fit")
    finally:
        forget(package)
    assert code["trainer_sha256"] == sha256_of(tmp_path / package / "__init__.py")
    assert code["trainer_commit"] is None and code["trainer_dirty"] is None
    assert code["trainer_distribution"] is None


def test_a_trainer_the_repository_ignores_is_not_attributed_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installed copy in a git-ignored .venv inside the project is not the project's code at its commit."""
    from prefect_model_registry.registry.core.lineage import trainer_code

    (tmp_path / ".gitignore").write_text(".venv/\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "project")
    package = f"installed_{uuid.uuid4().hex[:8]}"
    site = tmp_path / ".venv" / "site-packages"
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text("def fit(frame, target, params):\n    return None\n")
    monkeypatch.syspath_prepend(str(site))
    try:
        code = trainer_code(f"{package}:fit")
    finally:
        forget(package)
    assert code["trainer_sha256"] == sha256_of(site / package / "__init__.py")
    assert code["trainer_commit"] is None and code["trainer_dirty"] is None


def test_pmr_lineage_shows_the_trainer_and_checks(
    team_repo: TeamRepo, trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = pmr(capsys, "--registry", trained.registry, "--json", "lineage", trained.model, "2")
    assert code == 0
    newest = json.loads(out)[0]
    lin = version(trained, 2).lineage
    for field in ("trainer_sha256", "trainer_commit", "suite_sha256", "thresholds_sha256", "config_sha256"):
        assert newest[field] == getattr(lin, field) and newest[field]
    assert newest["trainer_dirty"] is False and newest["trainer_distribution_version"] == "1.4.2"

    code, out = pmr(capsys, "--registry", trained.registry, "lineage", trained.model, "2")
    assert code == 0
    for number in (1, 2):
        lin = version(trained, number).lineage
        assert lin.trainer_sha256 and lin.trainer_commit and lin.suite_sha256 and lin.config_sha256
        assert lin.thresholds_sha256
        for shown in (lin.trainer_sha256[:12], lin.trainer_commit[:12], f"{team_repo.package} 1.4.2"):
            assert shown in out
        for shown in (lin.suite_sha256[:12], lin.thresholds_sha256[:12], lin.config_sha256[:12]):
            assert shown in out


def test_pmr_diff_shows_what_changed_in_the_code_and_checks(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = version(trained, 1).lineage, version(trained, 2).lineage
    code, out = pmr(capsys, "--registry", trained.registry, "--json", "diff", trained.model, "1", "2")
    assert code == 0
    rows = {row["field"]: row for row in json.loads(out)["lineage"]}
    assert rows["trainer commit"]["a"] == one.trainer_commit and rows["trainer commit"]["b"] == two.trainer_commit
    assert rows["trainer commit"]["differs"] and rows["trainer sha256"]["differs"]
    assert rows["thresholds sha256"]["differs"] and not rows["suite sha256"]["differs"]
    assert rows["trainer dirty"] == {"field": "trainer dirty", "a": False, "b": False, "differs": False}

    code, out = pmr(capsys, "--registry", trained.registry, "diff", trained.model, "1", "2")
    assert code == 0
    lines = {line.split("│")[2].strip(): line for line in out.splitlines() if line.count("│") >= 5}
    assert one.trainer_commit and two.trainer_commit and one.thresholds_sha256 and two.thresholds_sha256
    assert one.trainer_commit in lines["trainer commit"] and two.trainer_commit in lines["trainer commit"]
    assert "≠" in lines["trainer commit"] and "≠" in lines["thresholds sha256"]
    assert two.thresholds_sha256 in lines["thresholds sha256"]
    assert "≠" not in lines["suite sha256"]


def test_the_model_card_and_dashboard_show_the_code_and_checks(trained: Trained) -> None:
    mv = version(trained, 2)
    lin = mv.lineage
    assert lin.trainer_sha256 and lin.trainer_commit and lin.suite_sha256 and lin.thresholds_sha256
    assert lin.config_sha256
    card = model_card(mv, {}, "production")
    for shown in (lin.trainer_sha256, lin.trainer_commit, lin.suite_sha256, lin.thresholds_sha256, lin.config_sha256):
        assert shown in card
    with TestClient(create_app(trained.registry, bound_host="127.0.0.1", port=PORT), base_url=BASE) as client:
        page = client.get(f"/models/{trained.model}/versions/2").text
        lineage = page.split('id="lineage-table"', 1)[1].split("</table>", 1)[0]
        for shown in (lin.trainer_sha256, lin.trainer_commit, lin.suite_sha256, lin.config_sha256):
            assert shown in lineage
        diff = client.get(f"/models/{trained.model}/versions/2?against=1").text
        assert lin.trainer_commit in diff and version(trained, 1).lineage.trainer_commit in diff


def test_stored_code_and_checks_text_is_shown_as_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Lineage comes from any registrant (the Python API too): its text is escaped wherever it is shown."""
    registry = str(tmp_path / "reg")
    lineage = Lineage(
        trainer=EVIL, trainer_distribution=EVIL, suite=EVIL, thresholds=EVIL, trainer_commit=EVIL, trainer_dirty=True
    )
    Registry.open(registry).register("m", b"model", VersionInfo(lineage=lineage), fmt="bytes")
    mv = Registry.open(registry).get_version("m", 1)
    card = MarkdownIt("commonmark").enable("table").render(lineage_markdown(mv))
    assert "onerror" in card and "Trainer" in card  # shown ...
    assert "<img" not in card and "<script" not in card and 'href="javascript' not in card  # ... as text
    with TestClient(create_app(registry, bound_host="127.0.0.1", port=PORT), base_url=BASE) as client:
        page = client.get("/models/m/versions/1").text
    assert EVIL not in page and html.escape(EVIL, quote=True) in page
    assert '<th>trainer_dirty</th><td>yes <span class="muted">(uncommitted or untracked files)</span>' in page
    code, out = pmr(capsys, "--registry", registry, "lineage", "m", "1")
    assert code == 0 and "onerror" in out  # shown as typed, in the table


def test_manifests_without_the_new_fields_parse_and_serialise_unchanged() -> None:
    """Old manifests keep their bytes: a version re-written or announced late hashes as it was registered."""
    old = Path(__file__).resolve().parents[1] / "data" / "registry_v0_1" / "registry" / "models" / "churn" / "versions"
    for path in sorted(old.glob("*.json")):
        raw = json.loads(path.read_bytes())
        mv = ModelVersion.model_validate(raw)
        assert mv.lineage.trainer_sha256 is None and mv.lineage.config_sha256 is None
        assert json.loads(mv.to_bytes())["lineage"] == raw["lineage"]


def test_the_run_directory_counts_untracked_files_as_changes_too(tmp_path: Path) -> None:
    """``code_version`` (the directory the run started in) said clean with an untracked module beside the code."""
    from prefect_model_registry.registry.core.lineage import code_version

    git(tmp_path, "init", "-q")
    (tmp_path / "train.py").write_text("def fit(): ...\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "code")
    (tmp_path / "features.py").write_text("COLUMNS = []\n")  # never added
    assert code_version(tmp_path) == (git(tmp_path, "rev-parse", "HEAD"), True)
