"""Progress bars for ``pmr`` commands that move large artifacts: one helper, drawn on stderr.

A command opens :func:`transfer_bar` around its transfer and passes what it yields as the registry's
``progress=`` callback. The bar is drawn only where a person watches it: never under ``--json``, never when stderr
is not a terminal (a pipe, a CI log, a file), and only for a stage that moves at least :data:`BAR_MIN_BYTES`.
Each stage (``hashing``, ``uploading``, ``downloading``, ``copying``, ``verifying``) is its own row, named by
the stage. stdout is left alone: results (and JSON) stay clean.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from prefect_model_registry.registry.cli.context import current, err
from prefect_model_registry.registry.core.transfer import ProgressCallback

#: A stage moving fewer bytes than this gets no bar (it is over before a bar would help).
BAR_MIN_BYTES = 8 * 1024 * 1024


class _Bars:
    """A :data:`ProgressCallback` that draws one rich task per stage (called from any thread)."""

    def __init__(self, progress: Progress, min_bytes: int) -> None:
        self._progress, self._min = progress, min_bytes
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Show ``done`` of ``total`` bytes for ``stage`` (a stage under the minimum is not shown)."""
        with self._lock:
            task = self._tasks.get(stage)
            if task is None:
                if total < self._min:
                    return
                task = self._tasks[stage] = self._progress.add_task(stage, total=total)
            self._progress.update(task, completed=done, total=max(total, done))


@contextlib.contextmanager
def transfer_bar(
    console: Console | None = None, *, min_bytes: int = BAR_MIN_BYTES
) -> Iterator[ProgressCallback | None]:
    """A progress callback drawing bars on stderr, or None where no bar belongs.

    Args:
        console: where to draw (a test passes a console forced to be a terminal); by default ``pmr``'s stderr
            console, and only when ``sys.stderr`` is a terminal (``FORCE_COLOR`` does not force bars into logs).
        min_bytes: a stage moving fewer bytes draws nothing.

    Yields:
        The callback to pass as ``progress=``, or None under ``--json`` or without a terminal.

    """
    if current().json:
        yield None
        return
    if console is None:
        if not sys.stderr.isatty():
            yield None
            return
        console = err
    elif not console.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description:<11}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        yield _Bars(progress, min_bytes)
