"""MkDocs hooks: the reference pages that are generated from the code at every build, never copied by hand.

A page under ``content/reference/`` holds a marker line, ``<!-- generated: NAME -->``, that :func:`on_page_markdown`
replaces with the Markdown of ``GENERATORS[NAME]``:

- ``cli``: every ``pmr`` command and subcommand, walked from the real typer app (``prefect_model_registry.flows.cli``,
  which adds the ``ci``, ``suite`` and decision commands to the registry's). No plugin fit (checked with typer
  0.29): typer now bundles its own click (``typer._click``), so mkdocs-click's and mkdocs-typer2's "native" engine,
  written against ``click``, fail on its commands (``TyperOption`` has no ``.type``), and mkdocs-typer2's "legacy"
  engine runs the ``typer`` program found on ``PATH`` in a subprocess and renders an empty page, silently, when that
  fails; strict builds would not notice. Walking the app here costs no subprocess and fails the build loudly.
- ``settings``: the ``PMR_*`` variables and limits, from ``registry.settings.VARIABLES``.
- ``errors``: the error hierarchies of the three packages as a tree, with each class's summary and the exit code
  ``pmr`` ends with on it (the CLI's own table, ``registry.cli.context._ERRORS``, with the flows' additions).

An unknown marker, or a generator that raises, fails the build.

:class:`SphinxRoles` is a griffe extension (mkdocs.yml loads it for mkdocstrings): the package's docstrings name
objects with Sphinx roles (``:class:`~prefect_model_registry.registry.errors.InvalidMetadata```), which Markdown
would print as they are; it turns each into an optional cross-reference: a link where the object is documented,
code elsewhere.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import griffe
from mkdocs.exceptions import PluginError

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)

# ``x`` (reStructuredText literals) and :role:`~a.b.C` (Sphinx roles) in help texts and docstrings, as Markdown.
_RST_LITERAL = re.compile(r"``(.+?)``")
_SPHINX_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace each ``<!-- generated: NAME -->`` line of a page with the generated Markdown."""

    def generate(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise PluginError(f"{page.file.src_uri}: unknown generated section {name!r} (known: {sorted(GENERATORS)})")
        return GENERATORS[name]()

    return MARKER.sub(generate, markdown)


def _markdown_text(text: str) -> str:
    """A help text or docstring as Markdown: RST literals and Sphinx roles become code spans."""
    text = _RST_LITERAL.sub(r"`\1`", text)
    return _SPHINX_ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1]}`", text)


def _cell(text: str) -> str:
    """Text for one table cell: one line, pipes escaped."""
    return " ".join(_markdown_text(text).split()).replace("|", "\\|")


class SphinxRoles(griffe.Extension):
    """Sphinx roles in docstrings become optional cross-references (mkdocs-autorefs): linked where documented."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the roles of every docstring in the package, once all of it is loaded (names resolve)."""
        for obj in _objects(pkg):
            if obj.docstring is not None and ":`" in obj.docstring.value:
                obj.docstring.value = _SPHINX_ROLE.sub(lambda m, o=obj: _reference(o, m), obj.docstring.value)


def _objects(obj: griffe.Object) -> Iterator[griffe.Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


def _reference(obj: griffe.Object, match: re.Match[str]) -> str:
    """An optional cross-reference for one role: its target resolved in ``obj``'s scope, shown short after ``~``."""
    short, target = match.group(1) == "~", match.group(2)
    head, _, rest = target.partition(".")
    try:
        identifier = obj.resolve(head) + (f".{rest}" if rest else "")
    except (griffe.NameResolutionError, ValueError):
        identifier = target
    title = target.rsplit(".", 1)[-1] if short else target
    return f'<autoref identifier="{identifier}" optional><code>{title}</code></autoref>'


# -- cli --------------------------------------------------------------------------------------------------------


def _commands(command: Any, ctx: Any) -> Iterator[tuple[Any, Any]]:
    """``(command, context)`` for ``command`` and every command under it, depth first, in the app's order."""
    yield command, ctx
    for name in command.list_commands(ctx) if hasattr(command, "list_commands") else ():
        sub = command.get_command(ctx, name)
        if sub is not None and not sub.hidden:
            yield from _commands(sub, sub.context_class(sub, info_name=name, parent=ctx))


def _anchor(path: str) -> str:
    return path.replace(" ", "-")


def _usage(command: Any, ctx: Any) -> str:
    pieces = [ctx.command_path]
    if command.options_metavar:
        pieces.append(command.options_metavar)
    for param in command.get_params(ctx):
        if param.param_type_name != "argument":
            continue
        piece = param.name.upper() + ("..." if param.nargs == -1 else "")
        pieces.append(piece if param.required else f"[{piece}]")
    if hasattr(command, "list_commands"):
        pieces.append("COMMAND [ARGS]...")
    return " ".join(pieces)


def _command_section(command: Any, ctx: Any) -> str:
    path = ctx.command_path
    depth = path.count(" ")
    lines = [f"{'#' * min(depth + 2, 4)} `{path}` {{ #{_anchor(path)} }}", ""]
    if command.help:
        lines += [_markdown_text(inspect.cleandoc(command.help).replace("\b\n", "")), ""]
    lines += ["```console", f"$ {_usage(command, ctx)}", "```", ""]
    arguments, options = [], []
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None or "--help" in getattr(param, "opts", ()):
            continue
        if param.param_type_name == "argument":
            arguments.append(f"| `{param.name.upper()}` | {_cell(record[1])} |")
        else:
            options.append(f"| `{record[0]}` | {_cell(record[1])} |")
    if arguments:
        lines += ["| Argument | Description |", "| --- | --- |", *arguments, ""]
    if options:
        lines += ["| Option | Description |", "| --- | --- |", *options, ""]
    if hasattr(command, "list_commands"):
        rows = []
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                summary = _cell(sub.get_short_help_str(limit=300))
                rows.append(f"| [`{name}`](#{_anchor(f'{path} {name}')}) | {summary} |")
        lines += ["| Command | Summary |", "| --- | --- |", *rows, ""]
    return "\n".join(lines)


def cli_page() -> str:
    """Every ``pmr`` command and subcommand: what it does, its usage, arguments and options with their help."""
    import typer.main

    from prefect_model_registry.flows.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="pmr")
    return "\n".join(_command_section(command, context) for command, context in _commands(root, ctx))


# -- settings ---------------------------------------------------------------------------------------------------


def _size(value: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size and value % size == 0:
            return f"{value // size} {unit}"
    return f"{value} bytes"


def _default(name: str, value: Any) -> str:
    if value in (None, ()):
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int) and name.endswith("_BYTES"):
        return f"`{value}` ({_size(value)})"
    return f"`{value}`"


def settings_page() -> str:
    """The ``PMR_*`` variables and limits: name, default, what it sets and the ``Settings`` field that holds it."""
    from prefect_model_registry.registry.settings import VARIABLES

    rows = ["| Variable | Default | Description | `Settings` field |", "| --- | --- | --- | --- |"]
    for var in VARIABLES.values():
        description = _cell(var.description)
        rows.append(f"| `{var.name}` | {_default(var.name, var.default)} | {description} | `{var.field}` |")
    return "\n".join(rows)


# -- errors -----------------------------------------------------------------------------------------------------


def _error_classes() -> list[type[BaseException]]:
    from prefect_model_registry.flows import errors as flows_errors
    from prefect_model_registry.registry import errors as registry_errors
    from prefect_model_registry.validations import errors as validations_errors

    found: list[type[BaseException]] = []
    for module in (registry_errors, validations_errors, flows_errors):
        classes = [
            value
            for _, value in inspect.getmembers(module, inspect.isclass)
            if issubclass(value, BaseException) and value.__module__ == module.__name__
        ]
        # In source order (inspect.getmembers sorts by name).
        found += sorted(classes, key=lambda cls: inspect.getsourcelines(cls)[1])
    return found


def _summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return _cell(doc.split("\n\n", 1)[0])


def errors_page() -> str:
    """The project's errors as a tree (each under its first project base), with summary and ``pmr`` exit code."""
    from prefect_model_registry.flows.cli import app  # noqa: F401 - registers the flows' and validations' errors
    from prefect_model_registry.registry.cli.context import _ERRORS

    classes = _error_classes()
    known = set(classes)
    children: dict[type | None, list[type]] = {}
    for cls in classes:
        parent = next((base for base in cls.__bases__ if base in known), None)
        children.setdefault(parent, []).append(cls)

    def exit_code(cls: type) -> str:
        code = next((code for kind, code in _ERRORS if issubclass(cls, kind)), None)
        return "traceback" if code is None else str(code)

    def render(cls: type, depth: int) -> Iterator[str]:
        others = [base.__name__ for base in cls.__bases__ if base not in known and base is not Exception]
        also = f" ({', '.join(others)})" if others else ""
        module = cls.__module__.removeprefix("prefect_model_registry.")
        yield (
            f"{'    ' * depth}- **`{cls.__name__}`**{also}: {_summary(cls)} "
            f"<small>`{module}`, exit code {exit_code(cls)}</small>"
        )
        for child in children.get(cls, []):
            yield from render(child, depth + 1)

    lines: list[str] = []
    for root in children.get(None, []):
        lines += [*render(root, 0), ""]
    return "\n".join(lines)


GENERATORS: dict[str, Callable[[], str]] = {"cli": cli_page, "settings": settings_page, "errors": errors_page}
