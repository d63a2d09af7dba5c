"""The CI examples in deployments/ci/ are valid YAML, keep credentials out of the file, and call only commands
that exist: ``pmr`` commands and options are parsed by the real typer app, ``prefect`` commands and options are
checked against the installed Prefect CLI's help, anything else must be on PATH (or in the venv).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "deployments" / "ci"
GITHUB = CI / "github-actions.yml"
GITLAB = CI / "gitlab-ci.yml"
BIN = Path(sys.executable).parent

SEPARATORS = {"&&", "||", ";", "|"}
CREDENTIALS = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|AUTH)", re.IGNORECASE)
GITLAB_RESERVED = {"stages", "variables", "default", "include", "workflow", "image", "services", "cache"}


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), f"{path} is not a mapping"
    return doc


def github_scripts(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (f"{job}[{i}]", step["run"])
        for job, spec in doc["jobs"].items()
        for i, step in enumerate(spec["steps"])
        if "run" in step
    ]


def gitlab_jobs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in doc.items() if k not in GITLAB_RESERVED and not k.startswith(".")}


def gitlab_scripts(doc: dict[str, Any]) -> list[tuple[str, str]]:
    scripts = [("default.before_script", line) for line in doc.get("default", {}).get("before_script", [])]
    for job, spec in gitlab_jobs(doc).items():
        for key in ("before_script", "script", "after_script"):
            scripts += [(f"{job}.{key}", line) for line in spec.get(key, [])]
    return scripts


def commands(script: str) -> list[list[str]]:
    """Simple commands of a shell snippet: lines joined at backslashes, split at && || ; |, no VAR=x prefix."""
    found: list[list[str]] = []
    for line in script.replace("\\\n", " ").splitlines():
        tokens = shlex.split(line, comments=True)
        current: list[str] = []
        for token in [*tokens, ";"]:
            if token in SEPARATORS:
                while current and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", current[0]):
                    current.pop(0)
                if current:
                    found.append(current)
                current = []
            else:
                current.append(token)
    return found


ALL_COMMANDS = [
    pytest.param(cmd, id=f"{path.name}:{where}:{' '.join(cmd[:3])}")
    for path, extract in ((GITHUB, github_scripts), (GITLAB, gitlab_scripts))
    for where, script in extract(load(path))
    for cmd in commands(script)
]


def test_commands_are_found() -> None:
    firsts = {cmd.values[0][0] for cmd in ALL_COMMANDS}
    assert {"pmr", "prefect", "pip"} <= firsts
    assert len(ALL_COMMANDS) >= 8


@pytest.mark.parametrize("cmd", ALL_COMMANDS)
def test_command_exists(cmd: list[str]) -> None:
    program, args = cmd[0], cmd[1:]
    if program == "pmr":
        check_pmr(args)
    elif program == "prefect":
        check_prefect(args)
    elif program == "pip":
        assert args[:1] == ["install"], cmd
        target = args[-1]
        assert (ROOT / target / "pyproject.toml").exists(), f"pip install {target}: not a project path"
    else:
        assert shutil.which(program) or (BIN / program).exists(), f"{program} is not installed"


def check_pmr(args: list[str]) -> None:
    """Parse ``pmr ARGS`` with the real app, down to the leaf command (options, choices, types)."""
    from prefect_model_registry.flows.cli import app

    # typer vendors its own click: duck-type groups (they have .commands).
    cmd: Any = typer.main.get_command(app)
    ctx_args = list(args)
    while getattr(cmd, "commands", None) is not None:
        # Options of the group itself (e.g. pmr --registry X --json ci ...).
        while ctx_args and ctx_args[0].startswith("-"):
            opt = ctx_args.pop(0).split("=", 1)[0]
            param = next((p for p in cmd.params if opt in p.opts), None)
            assert param is not None, f"pmr: unknown option {opt}"
            if not getattr(param, "is_flag", False) and "=" not in opt:
                ctx_args.pop(0)
        assert ctx_args, "pmr: missing command"
        name = ctx_args.pop(0)
        sub = cmd.commands.get(name)
        assert sub is not None, f"pmr: no command {name!r} (have {sorted(cmd.commands)})"
        cmd = sub
    cmd.make_context(cmd.name, ctx_args)  # raises on unknown options, bad choices, missing arguments


@functools.cache
def prefect_help(words: tuple[str, ...]) -> str:
    out = subprocess.run(
        [str(BIN / "prefect"), *words, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, f"prefect {' '.join(words)}: {out.stdout[-1500:]}{out.stderr[-1500:]}"
    return out.stdout


def check_prefect(args: list[str]) -> None:
    """The command exists (its help names it) and every option used appears in its help."""
    session = {"--no-prompt", "--prompt"}
    args = [a for a in args if a not in session]
    words = []
    for arg in args:
        if arg.startswith("-"):
            break
        words.append(arg)
    text = prefect_help(tuple(words))
    usage = re.search(r"Usage: prefect ([\w -]+?) (?:COMMAND|\[)", text)
    assert usage, text[:500]
    path = usage.group(1).split()
    assert words[: len(path)] == path, f"prefect {' '.join(words)} resolves to prefect {' '.join(path)}"
    for arg in args:
        if arg.startswith("--"):
            option = arg.split("=", 1)[0]
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), f"prefect {' '.join(path)}: {option}?"


def test_github_workflow_triggers_and_jobs() -> None:
    doc = load(GITHUB)
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert "flows/data/**" in on["push"]["paths"] and on["push"]["tags"] == ["promote-v*"]
    jobs = doc["jobs"]
    for name, job in jobs.items():
        assert job["runs-on"] and job["steps"], name
        for need in [job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", []):
            assert need in jobs, f"{name} needs unknown job {need}"
        for step in job["steps"]:
            assert "run" in step or re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step
    retrain = " ".join(s.get("run", "") for s in jobs["retrain"]["steps"])
    assert "pmr ci retrain" in retrain and "--expect-stage" in retrain
    promote = " ".join(s.get("run", "") for s in jobs["promote"]["steps"])
    assert "promote-model/promote" in promote and "--watch" in promote and "GITHUB_REF_NAME#promote-v" in promote
    assert "startsWith(github.ref_name, 'promote-v')" in jobs["promote"]["if"]


def test_gitlab_pipeline_triggers_and_jobs() -> None:
    doc = load(GITLAB)
    jobs = gitlab_jobs(doc)
    for name, job in jobs.items():
        assert job["stage"] in doc["stages"], name
        assert job["script"] and job["rules"], name
    assert any("flows/data/**/*" in rule.get("changes", []) for rule in jobs["retrain"]["rules"])
    assert any("CI_COMMIT_TAG" in rule["if"] for rule in jobs["promote"]["rules"])
    assert any("promote-model/promote" in line and "--watch" in line for line in jobs["promote"]["script"])


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=lambda p: p.name)
def test_no_credentials_in_the_examples(path: Path) -> None:
    text = path.read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}", text)
    doc = load(path)
    envs: list[dict[str, Any]] = []
    if path == GITHUB:
        envs.append(doc.get("env", {}))
        for job in doc["jobs"].values():
            envs.append(job.get("env", {}))
            envs += [step.get("env", {}) for step in job["steps"]]
        for env in envs:
            for key, value in env.items():
                if CREDENTIALS.search(key):
                    assert str(value).startswith("${{ secrets."), f"{key} must come from secrets, not the file"
    else:
        envs.append(doc.get("variables", {}))
        envs += [job.get("variables", {}) for job in gitlab_jobs(doc).values()]
        for env in envs:
            for key in env:
                # Credentials are project CI/CD variables (masked); the file must not define them at all.
                assert not CREDENTIALS.search(key) and not key.startswith(("AWS_", "PREFECT_API")), key


def test_examples_name_deployments_that_prefect_yaml_defines() -> None:
    from tests.deployments.test_prefect_yaml import deployed_names

    names = deployed_names()
    used = set()
    for path in (GITHUB, GITLAB):
        used |= set(re.findall(r"\b([a-z-]+-model/[a-z-]+)\b", path.read_text()))
    assert used and used <= names, used - names
