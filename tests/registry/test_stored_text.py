"""Stored text never attacks the terminal that shows it (issue 27).

Every string a registrant, reviewer or scoring run can store (actor, reason, description, tags, params, metric
names, lineage, operation keys, a scored file's stamps) goes through one output helper: rich markup is shown as
typed, never interpreted (``[/x]`` used to crash ``pmr history``, ``versions`` and ``show`` with a MarkupError),
and control and format characters are shown as escapes (a raw ``\\x1b[2K`` used to erase an audit line on
screen). ``--json`` keeps the exact values.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import prefect_model_registry.flows.cli  # noqa: F401  (registers `pmr explain-prediction`)
from prefect_model_registry.registry import Lineage, Registry, VersionInfo
from prefect_model_registry.registry.cli import main
from prefect_model_registry.registry.core import keys
from prefect_model_registry.registry.models import sha256
from tests.conftest import snapshot

#: Markup that does not parse, markup that would restyle, a line erase, an OSC 8 hyperlink, a right-to-left
#: override, a C1 control sequence introducer and a zero-width space.
HOSTILE = "[/x][red]\x1b[2K\x1b]8;;http://evil.example\x07click\x1b]8;;\x07\u202egnp.exe\x9b2J\u200bend"
#: Characters that must never reach a terminal raw.
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u200b")


def pmr(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def assert_safe(text: str) -> None:
    found = [repr(c) for c in RAW if c in text]
    assert not found, f"raw control characters reached the terminal: {found}\n{text!r}"


@pytest.fixture
def hostile(tmp_path: Path) -> str:
    """A registry whose every free-text field holds :data:`HOSTILE`."""
    location = str(tmp_path / "reg")
    reg = Registry.open(location)
    lineage = Lineage(dataset_uri=HOSTILE, dataset_fingerprint="f" * 64, code_version=HOSTILE, flow_run_id=HOSTILE)
    for n in (1, 2):
        info = VersionInfo(
            metrics={f"auc{HOSTILE}": 0.9 + n / 100},
            params={HOSTILE: f"{HOSTILE}{n}"},
            tags={"owner": HOSTILE},
            description=HOSTILE,
            lineage=lineage,
        )
        reg.register("m", f"model {n}".encode(), info, fmt="bytes", actor=HOSTILE, operation_key=f"{HOSTILE}{n}")
        reg.promote("m", n, "staging", actor=HOSTILE, reason=HOSTILE)
        reg.promote("m", n, "production", actor=HOSTILE, reason=HOSTILE)
    reg.set_alias("m", "champion", 2, actor=HOSTILE, reason=HOSTILE)
    reg.describe("m", None, HOSTILE, actor=HOSTILE)
    reg.record_scoring("m", 2, {"run": HOSTILE, "input_uri": HOSTILE, "output_uri": HOSTILE, "rows": 3}, actor=HOSTILE)
    reg.flush()
    return location


COMMANDS = [
    ["models"],
    ["versions", "m"],
    ["show", "m/2"],
    ["show", "m@champion"],
    ["history", "m"],
    ["lineage", "m", "2"],
    ["predictions", "m"],
    ["diff", "m", "1", "2"],
    ["tag", "m", "2", f"k={HOSTILE}"],
    ["untag", "m", "2", "owner"],
    ["describe", "m", "2", HOSTILE],
    ["alias", "m", "canary", "1", "--reason", HOSTILE],
    ["rollback", "m", "--reason", HOSTILE, "--move-aliases"],
    ["promote", "m", "1", "--to", "staging", "--reason", HOSTILE],
    ["verify", "--repair"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_every_command_shows_stored_text_as_typed(hostile: str, capsys: pytest.CaptureFixture[str], args) -> None:
    code, out, err = pmr(capsys, "--registry", hostile, "--actor", HOSTILE, *args)
    assert code == 0, err
    assert_safe(out + err)
    assert "Traceback" not in err
    if args[0] in ("versions", "show", "history", "rollback", "promote", "alias", "describe"):
        assert "[/x][red]" in out  # markup shown as typed, neither swallowed nor applied
        assert "\\x1b[2K" in out or "\\u001b[2K" in out  # the escape sequence shown, not run


def test_verify_findings_that_quote_stored_text(hostile: str, capsys: pytest.CaptureFixture[str]) -> None:
    reg = Registry.open(hostile)
    reg.store.delete(keys.claim_key("m", f"{HOSTILE}1"))  # verify quotes the lost claim's key
    code, out, err = pmr(capsys, "--registry", hostile, "verify")
    assert code == 1 and "claim_missing" in out, err
    assert_safe(out + err)
    assert "[/x][red]" in out


def test_error_lines_show_stored_text_as_typed(hostile: str, tmp_path: Path, capsys) -> None:
    before = snapshot(Registry.open(hostile))
    code, _, err = pmr(capsys, "--registry", hostile, "show", "m@[/x]")
    assert code == 2 and "pmr: error:" in err and "[/x]" in err and "Traceback" not in err
    model = tmp_path / "model.bin"
    model.write_bytes(b"other bytes")
    code, _, err = pmr(capsys, "--registry", hostile, "register", "m", str(model), "--key", f"{HOSTILE}1", "-m", "x=1")
    assert code == 1 and "already used" in err and "[/x][red]" in err, err
    assert_safe(err)
    assert snapshot(Registry.open(hostile)) == before


def test_explain_prediction_shows_a_scored_file_as_typed(hostile: str, tmp_path: Path, capsys) -> None:
    mv = Registry.open(hostile).get_version("m", 2)
    scored = tmp_path / "scored.csv"
    header = "prediction,pmr_model,pmr_version,pmr_artifact_sha256,pmr_scoring_run,pmr_scored_at"
    row = [HOSTILE, "m", "2", mv.artifact.sha256, HOSTILE, HOSTILE]
    scored.write_text(header + "\n" + ",".join(json.dumps(x) for x in row) + "\n")
    code, out, err = pmr(capsys, "--registry", hostile, "explain-prediction", str(scored))
    assert code == 0, err
    assert_safe(out + err)
    assert "[/x][red]" in out


def test_json_keeps_the_exact_values(hostile: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = pmr(capsys, "--registry", hostile, "--json", "history", "m")
    assert code == 0
    assert_safe(out)  # C1 and format characters are \\u-escaped: valid JSON, exact once parsed
    events = json.loads(out)
    assert events[-1]["actor"] == HOSTILE and events[-1]["data"]["input_uri"] == HOSTILE
    code, out, _ = pmr(capsys, "--registry", hostile, "--json", "show", "m/1")
    assert code == 0 and json.loads(out)["description"] == HOSTILE and json.loads(out)["created_by"] == HOSTILE
    assert_safe(out)
    assert sha256(HOSTILE.encode()) == sha256(json.loads(out)["params"][HOSTILE][:-1].encode())


def test_ci_lines_show_run_text_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    from prefect_model_registry.flows.cli.runs import say

    say(f"state: Paused ({HOSTILE})")
    out = capsys.readouterr().out
    assert_safe(out)
    assert "[/x][red]" in out and "\\x1b[2K" in out
