"""Commands that work as written: every shell block of README.md and docs/content/ is marked, and the
``<!-- run -->`` ones run (issue 29).

The convention and the parser are in :mod:`tests.docs.blocks`. The real files are read at collection time, so
each runnable block is one test, named ``file:line``; the self-tests feed the same functions synthetic Markdown
to show that the check bites.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import BUCKET
from tests.docs.blocks import ROOT, Block, block_env, collect, doc_files, not_runnable_report, parse, run_block
from tests.seaweed import SeaweedServer

pytestmark = pytest.mark.slow

#: The no-run list lands here (git-ignored); CI can keep the folder as a build artifact.
OUTPUT = ROOT / "test-output" / "docs"
VENV_BIN = Path(sys.executable).parent

BLOCKS, PROBLEMS = collect(doc_files())
RUNNABLE = [b for b in BLOCKS if b.marker == "run"]


def test_every_shell_block_has_a_marker() -> None:
    """Each ```bash/sh/shell/console block has exactly one well-formed marker on the line before it."""
    assert not PROBLEMS, f"{len(PROBLEMS)} problem(s) with the run markers:\n" + "\n".join(map(str, PROBLEMS))


def test_not_runnable_blocks_are_listed_with_a_reason() -> None:
    """The blocks CI does not run, with why: printed and written to test-output/docs/not-runnable.md."""
    report = not_runnable_report(BLOCKS)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "not-runnable.md").write_text(report, encoding="utf-8")
    print(report)
    empty = [b.where for b in BLOCKS if b.marker == "no-run" and not b.reason]
    assert not empty, f"<!-- no-run: REASON --> without a reason: {empty}"


@pytest.fixture
def env(tmp_path: Path, s3_server: SeaweedServer) -> dict[str, str]:
    """A block's environment: scratch registry/home/Prefect home, and the S3 test server with its bucket."""
    return block_env(tmp_path, venv_bin=VENV_BIN, extra={**s3_server.env(), "PMR_TEST_BUCKET": BUCKET})


@pytest.mark.parametrize("block", RUNNABLE, ids=[b.where for b in RUNNABLE])
def test_runnable_block(block: Block, tmp_path: Path, env: dict[str, str]) -> None:
    """A ``<!-- run -->`` block succeeds with ``bash -euo pipefail`` in an empty folder, within 120 s."""
    result = run_block(block, tmp_path, env)
    assert result.ok, result.report()


# ---- the check bites: synthetic Markdown through the same functions ---------------------------------------

SYNTHETIC = """\
# A page

<!-- run -->
```bash
echo fine
```

<!-- run -->
```sh
pmr no-such-command
```

```bash
echo nobody marked me
```

<!-- no-run: needs an AWS account -->
~~~shell
aws s3 ls
~~~

1. In a list:

   <!-- run -->
   ```console
   $ echo one \\
       two
   one two
   $ test -d "$PMR_REPO"
   ```

<!-- no-run:   -->
```bash
echo empty reason
```

````markdown
<!-- run -->
```bash
exit 1  # inside another fence: not a block of this page
```
````

<!-- run -->

```bash
echo the marker is two lines up
```

<!-- run: with text -->
```bash
echo malformed marker
```

<!-- run -->
```python
print("a marker on a non-shell block")
```
"""


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    path = tmp_path / "page.md"
    path.write_text(SYNTHETIC, encoding="utf-8")
    return path


def test_parser_reads_fences_markers_and_indentation(synthetic: Path) -> None:
    blocks, _ = parse(synthetic)
    shell = {b.line: b for b in blocks if b.is_shell}
    assert sorted(shell) == [4, 9, 13, 18, 25, 33, 46, 51]  # the bash inside ````markdown is no block
    assert [(b.line, b.lang) for b in blocks if not b.is_shell] == [(37, "markdown"), (56, "python")]
    assert shell[4].marker == "run" and shell[4].text == "echo fine\n"
    assert shell[18].marker == "no-run" and shell[18].reason == "needs an AWS account"
    listed = shell[25]  # indented in a list item: the indentation is gone, the prompt lines are the script
    assert listed.marker == "run" and listed.text.startswith("$ echo one \\\n    two\n")
    assert listed.script() == 'echo one \\\n    two\ntest -d "$PMR_REPO"\n'
    assert shell[46].marker is None and shell[51].marker is None


def test_unmarked_and_malformed_blocks_are_reported(synthetic: Path) -> None:
    _, problems = parse(synthetic)
    lines = [str(p) for p in problems]
    found = "\n".join(lines)
    assert "page.md:13: ```bash block without <!-- run --> or <!-- no-run: REASON -->" in found
    assert "page.md:33: <!-- no-run: REASON --> with an empty reason" in found
    assert "page.md:44: marker '<!-- run -->' is not on the line just before a shell block" in found
    assert "page.md:46: ```bash block without" in found
    assert "page.md:50: malformed marker '<!-- run: with text -->'" in found
    assert "page.md:51: ```bash block without" in found
    assert "page.md:55: marker '<!-- run -->' is not on the line just before a shell block" in found
    assert len(problems) == 7, found


def test_the_no_run_list_flags_an_empty_reason(synthetic: Path) -> None:
    blocks, _ = parse(synthetic)
    report = not_runnable_report(b for b in blocks if b.is_shell)
    assert "| needs an AWS account |" in report and "**(empty)**" in report and "2 block(s)." in report


def test_a_broken_runnable_block_fails(synthetic: Path, tmp_path: Path) -> None:
    blocks, _ = parse(synthetic)
    runnable = {b.line: b for b in blocks if b.is_shell and b.marker == "run"}
    assert sorted(runnable) == [4, 9, 25]
    results = {}
    for line, block in runnable.items():
        scratch = tmp_path / f"block-{line}"
        results[line] = run_block(block, scratch, block_env(scratch, venv_bin=VENV_BIN))
    assert results[4].ok and results[4].stdout == "fine\n", results[4].report()
    assert results[25].ok and results[25].stdout == "one two\n", results[25].report()
    broken = results[9]
    assert not broken.ok
    report = broken.report()
    assert "page.md:9: <!-- run --> block failed (exit" in report
    assert "pmr no-such-command" in report and "No such command" in broken.stderr


def test_strict_bash_and_the_environment(tmp_path: Path) -> None:
    """``-u`` and ``pipefail`` bite; the block sees the scratch settings, never the real HOME."""
    page = tmp_path / "page.md"
    page.write_text(
        textwrap.dedent("""\
            <!-- run -->
            ```bash
            false | cat
            ```

            <!-- run -->
            ```bash
            echo "$UNSET_VARIABLE"
            ```

            <!-- run -->
            ```bash
            echo "$HOME|$PMR_REGISTRY_URI|$PMR_CACHE_DIR|$PREFECT_HOME|$PMR_REPO|$(pwd)|$(ls -A | wc -l)"
            command -v pmr
            ```
            """),
        encoding="utf-8",
    )
    blocks, problems = parse(page)
    assert not problems
    results = []
    for block in blocks:
        scratch = tmp_path / f"block-{block.line}"
        results.append(run_block(block, scratch, block_env(scratch, venv_bin=VENV_BIN)))
    assert [r.ok for r in results] == [False, False, True], [r.report() for r in results]
    assert "unbound variable" in results[1].stderr
    scratch = tmp_path / f"block-{blocks[2].line}"
    seen = results[2].stdout.splitlines()
    assert seen[0] == (f"{scratch}/home|{scratch}/registry|off|{scratch}/prefect-home|{ROOT}|{scratch}/work|0"), (
        results[2].report()
    )
    assert seen[1] == str(VENV_BIN / "pmr")


def test_leftover_processes_are_killed_and_a_hang_times_out(tmp_path: Path) -> None:
    """A block's background processes die with it, even one in a new session; a hanging block is stopped."""
    page = tmp_path / "page.md"
    page.write_text(
        textwrap.dedent("""\
            <!-- run -->
            ```bash
            sleep 600 &
            echo $! > "$PMR_REGISTRY_URI.pid1"
            setsid sleep 600 > /dev/null 2>&1 &
            echo $! > "$PMR_REGISTRY_URI.pid2"
            ```

            <!-- run -->
            ```bash
            sleep 600
            ```
            """),
        encoding="utf-8",
    )
    (left, hang), _ = parse(page)
    scratch = tmp_path / "left"
    result = run_block(left, scratch, block_env(scratch, venv_bin=VENV_BIN))
    assert result.ok, result.report()
    pids = [int((scratch / f"registry.pid{n}").read_text()) for n in (1, 2)]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_running(pid) for pid in pids):
        time.sleep(0.05)
    assert not any(_running(pid) for pid in pids), pids

    scratch = tmp_path / "hang"
    result = run_block(hang, scratch, block_env(scratch, venv_bin=VENV_BIN), timeout=1)
    assert result.returncode is None and "timed out after" in result.report()


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for its reaper."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"
