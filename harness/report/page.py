"""The report as one HTML page: the pieces (summary, timeline, plots, evidence, logs) put into the template
with Jinja2 (autoescaped), the stylesheet, the script and the data inlined so the file opens from disk."""

from __future__ import annotations

import base64
import datetime as dt
import json
from functools import cache
from importlib import resources
from typing import Any

from markupsafe import Markup


@cache
def asset(name: str) -> str:
    return (resources.files("splitbrain.harness.report") / "assets" / name).read_text(encoding="utf-8")


@cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("splitbrain.harness.report", "templates"),
                              autoescape=True, trim_blocks=False, lstrip_blocks=False,
                              undefined=jinja2.StrictUndefined)


def script_json(value: Any) -> Markup:
    """JSON safe inside a <script> element: no "<" can close it (each becomes \\u003c, still JSON)."""
    text = json.dumps(value, separators=(",", ":"), default=_jsonable, allow_nan=False)
    return Markup(text.replace("<", "\\u003c"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def svg_data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def render(template: str, **context: Any) -> str:
    context.setdefault("css", Markup(asset("report.css")))
    context.setdefault("generated", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
    return _environment().get_template(template).render(**context)
