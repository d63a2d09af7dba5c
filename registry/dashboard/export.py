"""``pmr ui --export DIR``: the dashboard's pages as static HTML with the chart assets, to open from disk.

The pages are the live app's own responses (the same routes, asked in-process), with every link rewritten to a
relative file path: the overview, the waiting page, every model page and the newest versions' pages of each model.
Sorting, row filtering and the charts work offline (they run in the page); the forms that ask the server for
another view (metric picker, ``--where``, audit filters, pagination, the diff picker) are hidden.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from prefect_model_registry.registry.dashboard.app import create_app
from prefect_model_registry.registry.dashboard.render import STATIC
from prefect_model_registry.registry.errors import InvalidMetadata, RegistryError
from prefect_model_registry.registry.registry import Registry

#: Version pages exported per model unless every version is asked for.
DEFAULT_VERSIONS = 50
#: The Host the in-process requests name (the app checks it like any other).
_HOST, _PORT = "127.0.0.1", 1
_LINK = re.compile(r'\b(href|src)="(/[^"]*)"')
_FORM = re.compile(r'<form method="get"|<p class="pager"')


@dataclass
class ExportResult:
    """What an export wrote."""

    directory: Path
    pages: list[str] = field(default_factory=list)


def _file_for(path: str) -> str:
    """The exported file of a dashboard path (``/models/churn`` -> ``models/churn/index.html``)."""
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    if not parts:
        return "index.html"
    if parts[0] == "static":
        return "/".join(parts)
    if parts[0] == "models" and len(parts) == 2:
        return f"models/{parts[1]}/index.html"
    if parts[0] == "models" and len(parts) == 4 and parts[2] == "versions":
        return f"models/{parts[1]}/versions/{parts[3]}.html"
    return "/".join(parts) + ".html"


def _relink(html: str, here: str, exported: set[str]) -> str:
    """Every ``/...`` link as a path relative to ``here``; a link to a page not exported loses its ``href``."""

    def swap(match: re.Match[str]) -> str:
        attr, target = match.group(1), match.group(2)
        parts = urlsplit(target.replace("&amp;", "&"))
        file = _file_for(parts.path)
        if file not in exported and not file.startswith("static/"):
            return 'data-not-exported=""'
        relative = posixpath.relpath(file, posixpath.dirname(here) or ".")
        return f'{attr}="{quote(relative)}{"#" + parts.fragment if parts.fragment else ""}"'

    return _FORM.sub(
        lambda m: m.group().replace("<form", "<form hidden").replace("<p", "<p hidden"), _LINK.sub(swap, html)
    )


async def _get(app: Any, path: str, query: str = "") -> tuple[int, str]:
    """One GET through the app in-process: (status, body)."""
    sent: list[bytes] = []
    status = 0
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(path),
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", f"{_HOST}:{_PORT}".encode())],
        "client": (_HOST, 0),
        "server": (_HOST, _PORT),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            sent.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(sent).decode()


def export(
    location: str, directory: str | os.PathLike[str], *, versions: int = DEFAULT_VERSIONS, force: bool = False
) -> ExportResult:
    """Write the dashboard of the registry at ``location`` into ``directory`` as static HTML.

    Args:
        location: a registry directory or ``s3://bucket/prefix``.
        directory: where the pages go (created; a non-empty one only with ``force``, its files then replaced).
        versions: version pages per model, newest first (``0``: every version).
        force: write into a non-empty directory.

    Raises:
        InvalidMetadata: ``directory`` is not empty and ``force`` is not given, or is a file.
        RegistryError: the registry cannot be read.

    """
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise InvalidMetadata(f"{out} is a file, not a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise InvalidMetadata(f"{out} is not empty: pass --force to write into it")
    reg = Registry.open(location, create=False)
    app = create_app(location, bound_host=_HOST, port=_PORT)
    paths = ["/", "/waiting"]
    for name in reg.models():
        model = quote(name, safe="")
        paths.append(f"/models/{model}")
        state = reg.state(name)
        latest = reg.latest_version(name)
        numbers = [v for v in range(latest, 0, -1) if v not in state.deleted]
        paths += [f"/models/{model}/versions/{v}" for v in (numbers[:versions] if versions else numbers)]
    exported = {_file_for(p) for p in paths}

    async def render_all() -> list[tuple[str, str]]:
        pages = []
        for path in paths:
            # A model page offline holds every version (its table and chart), as no link can ask for more.
            status, body = await _get(
                app, path, "rows=all&periods=all" if path.startswith("/models/") and path.count("/") == 2 else ""
            )
            if status != 200:
                raise RegistryError(f"the dashboard answered {status} for {path}")
            pages.append((path, body))
        return pages

    result = ExportResult(out)
    for path, body in asyncio.run(render_all()):
        file = _file_for(path)
        target = out / file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_relink(body, file, exported), encoding="utf-8")
        result.pages.append(file)
    shutil.copytree(STATIC, out / "static", dirs_exist_ok=True)
    return result
