"""``pmr ui``: the read-only web dashboard over the registry (see :mod:`prefect_model_registry.registry.dashboard`)."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Annotated

import typer

from prefect_model_registry.registry.cli.context import EXIT_FAILED, app, current, echo, err, error_line


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, made here so a busy port is one line, not a server's traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    return sock


def _fail(message: str) -> None:
    err.print(error_line("pmr: error:", "red", message), soft_wrap=True)
    raise typer.Exit(EXIT_FAILED)


@app.command("ui")
def ui(
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (exposing it: the dashboard has no login).")
    ] = ("127.0.0.1"),
    port: Annotated[int, typer.Option("--port", help="Port to listen on (0: any free port).")] = 8765,
    allow_data_download: Annotated[
        bool, typer.Option("--allow-data-download", help="Let the pages download each version's training data.")
    ] = False,
    export: Annotated[
        Path | None,
        typer.Option("--export", help="Write the pages as static HTML into this directory instead of serving them."),
    ] = None,
    versions: Annotated[int, typer.Option("--versions", min=1, help="With --export: version pages per model.")] = 50,
    all_versions: Annotated[bool, typer.Option("--all-versions", help="With --export: every version's page.")] = False,
    force: Annotated[bool, typer.Option("--force", help="With --export: write into a non-empty directory.")] = False,
) -> None:
    """Serve a read-only web dashboard of the registry: models, metrics across versions, stages, audit log."""
    from prefect_model_registry.registry.store import default_location

    location = current().registry or default_location()
    if export is not None:
        from prefect_model_registry.registry.dashboard.export import export as write_pages

        done = write_pages(str(location), export, versions=0 if all_versions else versions, force=force)
        echo(f"wrote {len(done.pages)} page(s) to {export}: open {export / 'index.html'} (no server, no network)")
        return

    import uvicorn

    from prefect_model_registry.registry.dashboard.app import create_app
    from prefect_model_registry.registry.errors import RegistryError

    try:
        sock = _bind(host, port)
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        return
    bound = sock.getsockname()[1]
    try:
        dashboard = create_app(str(location), bound_host=host, port=bound, allow_data_download=allow_data_download)
    except RegistryError as exc:
        sock.close()
        _fail(f"cannot open the registry {location}: {exc}")
        return
    if not _loopback(host):
        echo(
            f"warning: the dashboard listens on {host}, beyond this machine, and has no login: anyone who can "
            "reach it can read every model, metric and audit event",
            err=True,
        )
    shown = f"[{host}]" if ":" in host else host
    echo(f"pmr dashboard of {location} on http://{shown}:{bound}/ (read-only; Ctrl-C stops it)")
    server = uvicorn.Server(uvicorn.Config(dashboard, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
