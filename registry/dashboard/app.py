"""The dashboard's web app: GET routes only, pages read live from the registry, the ``Host`` header checked."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from prefect_model_registry.registry.core import keys
from prefect_model_registry.registry.core.lifecycle import rules_of
from prefect_model_registry.registry.dashboard import views
from prefect_model_registry.registry.dashboard.render import STATIC, environment
from prefect_model_registry.registry.errors import (
    InvalidMetadata,
    InvalidName,
    ObjectNotFound,
    RegistryError,
    VersionNotFound,
)
from prefect_model_registry.registry.events import EventType
from prefect_model_registry.registry.models import Event
from prefect_model_registry.registry.registry import Registry

#: Sent with every response: no script or style from anywhere but the app itself, no framing, no referrer.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def allowed_hosts(bound_host: str, port: int) -> set[str] | None:
    """``Host`` header values a request may carry: the bound address (``None``: any IP literal, a wildcard bind).

    Bound to 127.0.0.1, ``localhost:PORT`` is accepted too. A wildcard bind (``0.0.0.0``, ``::``) accepts
    IP-literal hosts only: a DNS-rebinding page reaches the server under a domain name, never an address.
    """
    try:
        address = ipaddress.ip_address(bound_host)
    except ValueError:
        return {f"{bound_host.lower()}:{port}"}
    if address.is_unspecified:
        return None
    hosts = {f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"}
    if address.is_loopback:
        hosts.add(f"localhost:{port}")
    return hosts


def host_allowed(host: str, allowed: set[str] | None, port: int) -> bool:
    """Whether a request's ``Host`` header names the bound address (see :func:`allowed_hosts`)."""
    host = host.strip().lower()
    if allowed is not None:
        return host in allowed
    name, sep, given_port = host.rpartition(":")
    if not sep or given_port != str(port):
        return False
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return name == "localhost"
    return True


def create_app(location: str, *, bound_host: str, port: int, allow_data_download: bool = False) -> FastAPI:
    """The dashboard over the registry at ``location`` for a server bound to ``bound_host:port``.

    Args:
        location: a registry directory or ``s3://bucket/prefix`` (opened now: an unreachable store raises).
        bound_host: the address the server listens on; requests naming another ``Host`` are refused (400).
        port: the port it listens on.
        allow_data_download: serve each version's training-data snapshot (off by default).

    """
    reg = Registry.open(location, create=False)
    memo = views.OverviewMemo()  # what each model's head event and newest version name, between page loads
    env = environment()
    hosts = allowed_hosts(bound_host, port)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(location=reg.store.uri, **context)
        return HTMLResponse(html, status_code=status)

    def not_found(message: str) -> HTMLResponse:
        return page("error.html", 404, title="Not found", message=message)

    @app.middleware("http")
    async def check_host(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not host_allowed(request.headers.get("host", ""), hosts, port):
            return PlainTextResponse("refused: the Host header does not name this dashboard's address", 400)
        if request.method not in ("GET", "HEAD"):
            return PlainTextResponse("the dashboard is read-only", 405, headers={"Allow": "GET, HEAD"})
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return not_found("No such page.")
        return PlainTextResponse(str(exc.detail), exc.status_code)

    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, exc: RegistryError) -> Response:
        if isinstance(exc, LookupError | InvalidName):  # no such model or version, or a name none can have
            return not_found(str(exc))
        return page("error.html", 500, title="The registry refused the read", message=str(exc))

    @app.get("/", response_class=HTMLResponse)
    def overview_page() -> HTMLResponse:
        return page("overview.html", title="Models", rows=views.overview(reg, memo))

    @app.get("/models/{name}", response_class=HTMLResponse)
    def model_page(request: Request, name: str) -> HTMLResponse:
        q = request.query_params
        state = reg.state(name)
        latest = reg.latest_version(name)
        where, sort = q.getlist("where"), q.get("sort") or None
        # Each part of the page is bounded: the newest CHART_VERSIONS versions charted, a page of VERSION_ROWS
        # rows, the newest TIMELINE_ROWS periods, a page of the audit log. A filter or sort reads every version,
        # as `pmr versions --where/--sort` does; so does ?rows=all.
        everything = q.get("rows") == "all" or bool(where) or bool(sort)
        wanted = views.window(_int(q.get("vpage"), 1))
        error = ""
        try:
            shown = reg.search(name, where=where, sort=sort, limit=None if everything else wanted, state=state)
        except InvalidMetadata as exc:
            error, everything = str(exc), False
            shown = reg.search(name, limit=wanted, state=state)
        count = latest - len(state.deleted)
        total = len(shown) if everything else count
        rows, vpage, vpages = (
            (shown, 1, 1) if q.get("rows") == "all" else views.rows_page(shown, _int(q.get("vpage"), 1), total)
        )
        charted = shown if everything else shown[: views.CHART_VERSIONS]
        names = views.metric_names(charted)
        chosen = [m for m in q.getlist("metric") if m in names] or views.default_metrics(charted)
        line, events, number, pages, event_types = views.model_log(
            reg, name, state, _int(q.get("page"), 1), event_type=q.get("type") or None, actor=q.get("actor") or None
        )
        periods = line.periods if q.get("periods") == "all" else views.newest_periods(line)
        policy = rules_of(state)
        keep = [(k, v) for k, v in q.multi_items() if k not in ("rows", "vpage", "periods")]
        return page(
            "model.html",
            title=name,
            name=name,
            state=state,
            versions=rows,
            aliases_of=views.aliases_by_version(state),
            vpage=vpage,
            vpages=vpages,
            total_versions=total,
            model_versions=count,
            query_all=urlencode([*keep, ("rows", "all")]),
            query_vpage=urlencode(keep),
            query_periods=urlencode([*keep, ("periods", "all")]),
            metrics=names,
            chosen=chosen,
            chart=views.chart_data(charted, chosen, line),
            timeline=periods,
            all_periods=len(line.periods),
            events=events,
            page=number,
            pages=pages,
            event_types=event_types,
            filters={"type": q.get("type") or "", "actor": q.get("actor") or ""},
            where=where,
            sort=sort or "",
            error=error,
            policy=policy.model_dump(mode="json") if policy is not None else None,
        )

    @app.get("/models/{name}/versions/{version}", response_class=HTMLResponse)
    def version_page(request: Request, name: str, version: str) -> HTMLResponse:
        number = _version(version)
        state = reg.state(name)
        mv = reg.view(name, number, state)
        against = request.query_params.get("against")
        other = reg.view(name, _version(against), state) if against else None
        refs = mv.reports
        reports = [
            {
                "gate": gate,
                "report": report,
                "passed": refs[gate].passed if gate in refs else f"gate:{gate}" not in state.blocked.get(number, []),
            }
            for gate, report in sorted(reg.reports(name, number).items())
        ]
        return page(
            "version.html",
            title=f"{name} v{number}",
            name=name,
            mv=mv,
            stage=state.stage_of(number),
            aliases=sorted(a for a, v in state.aliases.items() if v == number),
            blocked=state.blocked.get(number, []),
            approvals=state.approved_by.get(number, []),
            parents=reg.lineage(name, number)[1:],
            reports=reports,
            scoring=reg.scoring_runs(name, number),
            latest=reg.latest_version(name),
            other=other,
            diff=views.diff(mv, other) if other is not None else None,
            allow_data_download=allow_data_download,
        )

    def audit_query(request: Request) -> tuple[dict[str, str], list[Event], str]:
        q = request.query_params
        filters = {k: (q.get(k) or "").strip() for k in ("model", "actor", "type", "since", "until")}
        try:
            since = views.parse_time(filters["since"], "since")
            until = views.parse_time(filters["until"], "until")
        except InvalidMetadata as exc:
            return filters, [], str(exc)
        if filters["model"]:
            reg.state(filters["model"])  # an unknown model is a 404
        found = views.audit(
            reg,
            model=filters["model"] or None,
            actor=filters["actor"] or None,
            event_type=filters["type"] or None,
            since=since,
            until=until,
        )
        return filters, found, ""

    @app.get("/waiting", response_class=HTMLResponse)
    def waiting_page() -> HTMLResponse:
        return page("waiting.html", title="Waiting for review", entries=reg.waiting())

    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request) -> HTMLResponse:
        filters, found, error = audit_query(request)
        events, number, pages = views.paginate(found, _int(request.query_params.get("page"), 1))
        return page(
            "audit.html",
            title="Audit log",
            filters=filters,
            events=events,
            total=len(found),
            page=number,
            pages=pages,
            models=reg.models(),
            event_types=sorted(EventType),
            error=error,
            query=urlencode({k: v for k, v in filters.items() if v}),
            verify=saved_verify(reg),
        )

    @app.get("/audit.csv")
    def audit_csv(request: Request) -> Response:
        _, found, error = audit_query(request)
        if error:
            return PlainTextResponse(error, 400)
        return Response(
            views.audit_csv(found),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="pmr-audit.csv"'},
        )

    @app.get("/models/{name}/versions/{version}/dataset")
    def dataset(name: str, version: str) -> Response:
        number = _version(version)
        if not allow_data_download:
            return page(
                "error.html",
                403,
                title="Download off",
                message="Downloading training data is off: start the dashboard with --allow-data-download.",
            )
        data = reg.load_dataset(f"models:/{name}/{number}")
        return Response(
            data,
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{name}-v{number}-data"'},
        )

    return app


def saved_verify(reg: Registry) -> dict[str, Any] | None:
    """The last ``pmr verify --save`` result (one GET; a page load never runs verify), None when none was saved.

    Its ``report`` is what ``pmr verify --json`` printed; ``saved_at`` is a datetime (None if unreadable);
    ``problem`` names an unreadable record instead of failing the page.
    """
    try:
        raw = reg.store.get(keys.VERIFY_RESULT).data
    except ObjectNotFound:
        return None
    try:
        record = json.loads(raw)
        report = record["report"]
        findings = report["findings"]
        if not isinstance(findings, list) or not all(isinstance(f, dict) for f in findings):
            raise TypeError("findings is not a list of objects")
        at = datetime.fromisoformat(record["saved_at"])
    except (ValueError, KeyError, TypeError) as exc:
        return {"problem": f"{keys.VERIFY_RESULT} is unreadable ({type(exc).__name__}): run pmr verify --save again"}
    fields = ("severity", "kind", "model", "key", "problem")
    findings = [{k: str(f.get(k, "")) for k in fields} for f in findings]
    errors = sum(1 for f in findings if f["severity"] == "error")
    return {
        "problem": "",
        "saved_at": at,
        "ok": report.get("ok") is True,
        "errors": errors,
        "warnings": len(findings) - errors,
        "report": report,
        "findings": findings,
    }


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _version(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise VersionNotFound(f"no version {value!r}")
    return int(value)


__all__ = ["allowed_hosts", "create_app", "host_allowed", "saved_verify"]
