"""The shell blocks of the documentation: find them in Markdown, check their run markers, run them.

The convention (issue 29): every fenced shell block (```` ```bash ````, ``sh``, ``shell``, ``console``) in
README.md and docs/content/**/*.md is immediately preceded, on the line before its opening fence, by exactly one
marker:

- ``<!-- run -->``: the block works as written; CI runs it with ``bash -euo pipefail`` in an empty scratch
  directory (see :func:`block_env` for what it can rely on);
- ``<!-- no-run: REASON -->``: it cannot run in CI (it needs a cloud account, a long-running server, ...), and
  REASON says why.

The parser is a small CommonMark-style fence reader: fences of three or more backticks or tildes, at any
indentation (blocks nested in list items), closed by a fence of the same character at least as long with nothing
after it; the body loses the opening fence's indentation (then any indentation common to all its lines). Fences
inside other fences, and markers inside fences, are not seen. A ``console`` block runs only its commands: the
lines that start with ``$ `` (prompt removed), and the lines continuing one that ends with a backslash.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGS = frozenset({"bash", "sh", "shell", "console"})
TIMEOUT_S = 120.0

_FENCE_OPEN = re.compile(r"^(?P<indent>[ ]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_RUN = re.compile(r"^<!--\s*run\s*-->$")
_NO_RUN = re.compile(r"^<!--\s*no-run\s*:(?P<reason>.*?)-->$", re.DOTALL)
#: Anything that looks like a marker: a malformed one (``<!-- run: x -->``, ``<!--no-run-->``) is reported.
_MARKERISH = re.compile(r"^<!--\s*(no-)?run\b", re.IGNORECASE)


@dataclass(frozen=True)
class Block:
    """One fenced code block."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str  # first word of the info string, lower case ("" when none)
    text: str  # the body, indentation removed
    marker: str | None  # "run", "no-run", or None when the line before is no marker
    reason: str = ""  # a no-run marker's reason, stripped
    closed: bool = True

    @property
    def where(self) -> str:
        """``file:line``, relative to the repository when inside it (also the pytest id)."""
        try:
            name = self.path.resolve().relative_to(ROOT).as_posix()
        except ValueError:
            name = self.path.name
        return f"{name}:{self.line}"

    @property
    def is_shell(self) -> bool:
        return self.lang in SHELL_LANGS

    def script(self) -> str:
        """What runs: the body, or for ``console`` only its ``$``-prompted commands."""
        if self.lang != "console":
            return self.text
        commands: list[str] = []
        continuing = False
        for line in self.text.splitlines():
            if continuing:
                commands.append(line)
            elif line.startswith("$ ") or line == "$":
                commands.append(line[2:])
            else:
                continue
            continuing = line.rstrip().endswith("\\")
        return "\n".join(commands) + "\n"


@dataclass(frozen=True)
class Problem:
    """A broken convention, at ``where``."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _columns(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _lang(info: str) -> str:
    """The language of an info string: ``bash``, ``{.bash}``, ``bash title="x"``, ``.sh``."""
    words = info.strip().lstrip("{").split()
    return words[0].lstrip(".").rstrip("}").lower() if words else ""


def parse(path: Path) -> tuple[list[Block], list[Problem]]:
    """Every fenced block of ``path``, and the marker problems found outside them."""
    lines = [line.expandtabs(4) for line in path.read_text(encoding="utf-8").splitlines()]
    blocks: list[Block] = []
    problems: list[Problem] = []
    markers: dict[int, str] = {}  # 0-based line index -> its stripped text, for marker lines outside fences

    def where(index: int) -> str:
        return Block(path, index + 1, "", "", None).where

    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if _MARKERISH.match(stripped):
            markers[i] = stripped
        opening = _FENCE_OPEN.match(lines[i])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        closing = re.compile(rf"^[ ]*{re.escape(fence[0])}{{{len(fence)},}}[ ]*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            body.append(lines[j][min(indent, _columns(lines[j])) :])
            j += 1
        closed = j < len(lines)
        text = textwrap.dedent("\n".join(body)).strip("\n")
        text = text + "\n" if text else ""
        marker, reason = None, ""
        before = markers.get(i - 1)
        if before is not None:
            if _RUN.match(before):
                marker = "run"
            elif m := _NO_RUN.match(before):
                marker, reason = "no-run", m["reason"].strip()
        block = Block(path, i + 1, _lang(opening["info"]), text, marker, reason, closed)
        blocks.append(block)
        if not closed:
            problems.append(Problem(block.where, f"the {fence} fence is never closed"))
        i = j + 1

    shell_lines = {b.line - 1 for b in blocks if b.is_shell}
    for index, text in sorted(markers.items()):
        if not (_RUN.match(text) or _NO_RUN.match(text)):
            problems.append(
                Problem(where(index), f"malformed marker {text!r}: use <!-- run --> or <!-- no-run: REASON -->")
            )
        elif index + 1 not in shell_lines:
            problems.append(Problem(where(index), f"marker {text!r} is not on the line just before a shell block"))
        elif index - 1 in markers:
            problems.append(Problem(where(index + 1), "more than one marker before the block: keep exactly one"))
    for block in blocks:
        if not block.is_shell:
            continue
        if block.marker is None:
            problems.append(
                Problem(block.where, f"```{block.lang} block without <!-- run --> or <!-- no-run: REASON --> before it")
            )
        elif block.marker == "no-run" and not block.reason:
            problems.append(Problem(block.where, "<!-- no-run: REASON --> with an empty reason"))
    return blocks, problems


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md and every page of the site (docs/content/**/*.md) that exist now."""
    files = [root / "README.md"] if (root / "README.md").is_file() else []
    return files + sorted((root / "docs" / "content").rglob("*.md"))


def collect(files: Iterable[Path]) -> tuple[list[Block], list[Problem]]:
    """The shell blocks of ``files``, and every problem with their markers."""
    blocks: list[Block] = []
    problems: list[Problem] = []
    for path in files:
        found, wrong = parse(path)
        blocks += [b for b in found if b.is_shell]
        problems += wrong
    return blocks, problems


# ---- running a block ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """How a block's run ended."""

    block: Block
    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def report(self, tail: int = 3000) -> str:
        """The block, how it ended, and the end of its output: the failure message."""
        ended = f"timed out after {self.seconds:.0f}s" if self.returncode is None else f"exit {self.returncode}"
        return (
            f"{self.block.where}: <!-- run --> block failed ({ended}, {self.seconds:.1f}s)\n"
            f"--- block ({self.block.lang}) ---\n{self.block.script()}"
            f"--- stdout (tail) ---\n{self.stdout[-tail:]}\n"
            f"--- stderr (tail) ---\n{self.stderr[-tail:]}"
        )


def block_env(scratch: Path, *, venv_bin: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a block runs with: the caller's, minus its PMR_/PREFECT_/AWS_ settings, plus these.

    ``PATH`` starts with the venv's bin (``pmr``, ``python``, ``prefect``); ``PMR_REPO`` is the repository
    (data files a block may read); the registry is ``<scratch>/registry``; the artifact cache is off; Prefect
    keeps its home in the scratch folder and sends no analytics; ``HOME`` is a scratch folder too, so nothing
    touches the real one. ``extra`` adds the S3 test server's settings (``AWS_ENDPOINT_URL``, credentials,
    ``PMR_TEST_BUCKET``).
    """
    dropped = ("PMR_", "PREFECT_", "AWS_", "XDG_", "VIRTUAL_ENV", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    (scratch / "home").mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "VIRTUAL_ENV": str(venv_bin.parent),
            "PMR_REPO": str(ROOT),
            "PMR_REGISTRY_URI": str(scratch / "registry"),
            "PMR_CACHE_DIR": "off",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_HOME": str(scratch / "prefect-home"),
            "HOME": str(scratch / "home"),
        }
    )
    env.update(extra or {})
    return env


def _tagged(token: str) -> Iterator[int]:
    """The pids of this user's processes whose environment holds ``token`` (a block's descendants)."""
    needle = token.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                yield int(entry.name)
        except OSError:
            continue


def _kill_leftovers(pgid: int, token: str) -> None:
    """Kill what a block left running: its process group, and any descendant that left the group (setsid)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        for pid in _tagged(token):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if sig == signal.SIGTERM:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and (_group_alive(pgid) or any(_tagged(token))):
                time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies waiting for a reaper do not count)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def run_block(block: Block, scratch: Path, env: dict[str, str], *, timeout: float = TIMEOUT_S) -> Result:
    """Run ``block`` with ``bash -euo pipefail`` in ``<scratch>/work`` (empty), in its own process group.

    Output goes to files, not pipes: a server the block leaves in the background cannot hold the run open.
    Whatever the block leaves running is killed once bash ends (or at the timeout).
    """
    from tests.reaper import guard

    work = scratch / "work"
    work.mkdir(parents=True, exist_ok=True)
    script = scratch / "block.sh"
    script.write_text(block.script(), encoding="utf-8")
    out, err = scratch / "stdout.txt", scratch / "stderr.txt"
    token = f"PMR_DOC_BLOCK={uuid.uuid4().hex}"
    key, value = token.split("=", 1)
    started = time.monotonic()
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", str(script)],
            cwd=work,
            env={**env, key: value},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    guard(proc.pid)  # the group dies with this process, even if pytest is killed (the watchdog ends by itself)
    try:
        returncode: int | None = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        returncode = None
    finally:
        _kill_leftovers(proc.pid, token)
        proc.wait()
    return Result(
        block,
        returncode,
        out.read_text(encoding="utf-8", errors="replace"),
        err.read_text(encoding="utf-8", errors="replace"),
        time.monotonic() - started,
    )


def not_runnable_report(blocks: Iterable[Block]) -> str:
    """The no-run blocks as a Markdown table: where, language, reason, first line."""
    rows = [
        "# Documentation shell blocks not run in CI",
        "",
        "| where | lang | reason | first line |",
        "| --- | --- | --- | --- |",
    ]
    count = 0
    for block in blocks:
        if block.marker != "no-run":
            continue
        count += 1
        first = next((line for line in block.text.splitlines() if line.strip()), "")

        def cell(s: str) -> str:
            return s.replace("|", "\\|").replace("\n", " ")

        rows.append(f"| {block.where} | {block.lang} | {cell(block.reason) or '**(empty)**'} | `{cell(first)}` |")
    rows += ["", f"{count} block(s)."]
    return "\n".join(rows) + "\n"
