"""The one CLI layer every ``pmr`` command is written against: the app, its context object, output and errors.

Commands never keep state in module globals: the global options (``--registry``, ``--json``, ``--actor``,
``--traceback``) are one :class:`CliContext` per invocation, read with :func:`current`. Every result is printed
by :func:`emit`, every refusal by :func:`run`, which turns each project error (the registry's here, validations'
and the flows' registered by the layers above with :func:`register_errors`) into one red line and its exit code.

Exit codes: 0 done, 1 the operation was refused or failed, 2 bad usage or input.
"""

from __future__ import annotations

import json
import sys
import traceback
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from prefect_model_registry.registry.core.display import json_text, visible
from prefect_model_registry.registry.errors import InvalidMetadata, InvalidName, InvalidURI, RegistryError
from prefect_model_registry.registry.registry import Registry
from prefect_model_registry.registry.settings import ACTOR, REGISTRY_URI

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

app = typer.Typer(
    name="pmr",
    help="Model registry on object storage: versions, lineage, stages, aliases, audit log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

#: Project errors and their exit codes, most specific first; the layers above add theirs (register_errors).
_ERRORS: list[tuple[type[BaseException], int]] = [
    (InvalidName, EXIT_USAGE),
    (InvalidURI, EXIT_USAGE),
    (InvalidMetadata, EXIT_USAGE),
    (RegistryError, EXIT_FAILED),
]


def register_errors(*pairs: tuple[type[BaseException], int]) -> None:
    """Add error types (validations', the flows') that :func:`run` reports as one line with their exit code."""
    for pair in pairs:
        if pair not in _ERRORS:
            _ERRORS.insert(len(_ERRORS) - 1, pair)


@dataclass
class CliContext:
    """The global options of one ``pmr`` invocation."""

    registry: str | None = None
    json: bool = False
    actor: str | None = None
    traceback: bool = False

    def open(self) -> Registry:
        """The registry the invocation addresses (``--registry``, else ``PMR_REGISTRY_URI``, else the default)."""
        return Registry.open(self.registry)


#: Set by the app's callback at the start of every invocation (typer bundles its own click, so click's
#: context lookup does not see typer's contexts).
_CURRENT: ContextVar[CliContext | None] = ContextVar("pmr_cli_context", default=None)


def current() -> CliContext:
    """The running command's :class:`CliContext` (defaults outside a command, e.g. a direct function call)."""
    return _CURRENT.get() or CliContext()


def open_registry() -> Registry:
    """The registry of the running command."""
    return current().open()


@app.callback()
def _global(
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            "-r",
            envvar=REGISTRY_URI,
            help="s3://bucket/prefix or a directory (default .pmr/registry).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    actor: Annotated[
        str | None, typer.Option("--actor", envvar=ACTOR, help="Who is acting (default user@host).")
    ] = None,
    show_traceback: Annotated[
        bool, typer.Option("--traceback", help="On an error, print the full traceback, not one line.")
    ] = False,
) -> None:
    _CURRENT.set(CliContext(registry=registry, json=as_json, actor=actor, traceback=show_traceback))


def stdout() -> Console:
    """The console for results (stdout)."""
    # Piped output (CI logs, files) is not wrapped at rich's 80-column default.
    return Console() if sys.stdout.isatty() else Console(width=200)


class SafeTable(Table):
    """A rich table whose text cells are shown as typed: never parsed as markup, controls made visible.

    Styled cells are passed as :class:`rich.text.Text` (built by this package, never from stored text).
    """

    def add_row(self, *renderables: RenderableType | None, **kwargs: Any) -> None:
        """Add a row; ``str`` cells go through ``visible`` as plain text."""
        super().add_row(*(Text(visible(r)) if isinstance(r, str) else r for r in renderables), **kwargs)


def emit(data: Any, human: Table | Text | str | list[str] | None = None) -> None:
    r"""The one way ``pmr`` prints a result: JSON (exact values) or the human form, stored text shown as typed.

    A ``str`` is one line (a newline in it is shown as ``\n``); a list is one line per item; a :class:`Text`
    or a :class:`SafeTable` is built from parts this package styles.
    """
    if current().json or human is None:
        print(json_text(data))
        return
    if isinstance(human, str):
        human = Text(visible(human))
    elif isinstance(human, list):
        human = Text("\n").join(Text(visible(line)) for line in human)
    stdout().print(human)


def echo(message: object, *, err: bool = False) -> None:
    """One plain line (progress, a note) with stored text shown as typed: for commands that print as they go."""
    typer.echo(visible(message), err=err)


def error_line(label: str, style: str, message: object) -> Text:
    """``label`` styled, then ``message`` shown as typed."""
    return Text.assemble((label, style), " ", visible(message))


def pairs(items: list[str], what: str) -> dict[str, str]:
    """``KEY=VALUE`` options as a dict; anything else is refused naming the option ``--what``."""
    found = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidMetadata(f"--{what} takes KEY=VALUE, got {item!r}")
        found[key] = value
    return found


def parse_metrics(items: list[str]) -> dict[str, float]:
    """``--metric KEY=NUMBER`` options as a dict of floats."""
    metrics = {}
    for key, value in pairs(items, "metric").items():
        try:
            metrics[key] = float(value)
        except ValueError:
            raise InvalidMetadata(f"metric {key!r} must be a number, got {value!r}") from None
    return metrics


def parse_param(value: str) -> Any:
    """A ``--param`` value: JSON when it parses, else the string."""
    try:
        return json.loads(value)
    except ValueError:
        return value


KEY_HELP = "Operation key: a retry with the same key returns the outcome that landed (default: one per invocation)."


def op_key(given: str | None, *parts: object) -> str:
    """The given ``--key``, else a fresh key for this invocation (it is printed with the outcome)."""
    return given if given is not None else f"pmr:{parts[0]}:{uuid.uuid4().hex}"


def old_shape(new: str) -> NoReturn:
    """Refuse a command line in a shape ``pmr`` no longer takes: one line showing the new one, exit 2."""
    err.print(error_line("pmr: error:", "red", f"this command now takes: {new}"), soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)


def run(argv: list[str] | None = None) -> None:
    """Run ``pmr``: every project error becomes one red line and its exit code (``--traceback``: the whole trace).

    Usage errors are typer's own (exit 2). ``--json`` is global wherever it is given.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args and "--json" in args[1:] and args[0] != "--json":
        args = ["--json", *[a for a in args if a != "--json"]]
    try:
        app(args=args, prog_name="pmr")
    except Exception as exc:
        code = next((c for kind, c in _ERRORS if isinstance(exc, kind)), None)
        if code is None:
            raise
        if "--traceback" in args:
            traceback.print_exception(exc, file=sys.stderr)
        else:
            err.print(error_line("pmr: error:", "red", exc), soft_wrap=True)
        sys.exit(code)
