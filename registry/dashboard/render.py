"""Templates and the one escape for JSON embedded in a page (chart data)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from prefect_model_registry.registry.events import describe_change

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

#: Characters that could end a ``<script>`` element or start markup, as JSON escapes (same value once parsed).
_SCRIPT_SAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(data: Any) -> Markup:
    """``data`` as JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` left in it."""
    text = json.dumps(data, default=str, allow_nan=False)
    for char, escaped in _SCRIPT_SAFE.items():
        text = text.replace(char, escaped)
    return Markup(text)


def when(value: datetime | None) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS UTC`` (empty for none)."""
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def number(value: Any) -> str:
    """A metric value, short: up to 6 significant digits."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def environment() -> Environment:
    """The Jinja2 environment of the dashboard: autoescaping on for every template, undefined names an error."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["script_json"] = script_json
    env.filters["when"] = when
    env.filters["number"] = number
    env.filters["change"] = describe_change
    env.filters["pretty_json"] = lambda value: json.dumps(value, indent=2, sort_keys=True, default=str)
    return env
