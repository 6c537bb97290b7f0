"""Render the model as Grafana dashboard JSON (schemaVersion 39, Grafana 10/11).

Layout is computed here, not written by hand: each row starts on a new line and its
panels flow left to right in a 24-column grid. Panel ids are assigned in order, so the
output is deterministic and a drift test can compare it byte for byte.
"""

from __future__ import annotations

from typing import Any

from velocity_dashboards.model import Dashboard, Panel, Variable
from velocity_dashboards.settings import DEFAULT_RUNBOOK_BASE_URL

GRID_WIDTH = 24
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class LayoutError(ValueError):
    """A panel that cannot be placed (too wide, too many queries)."""


def _field_config(p: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": p.unit}
    if p.min is not None:
        defaults["min"] = p.min
    if p.max is not None:
        defaults["max"] = p.max
    if p.thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": t.color, "value": t.value} for t in p.thresholds],
        }
    if p.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "fillOpacity": 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"group": "A", "mode": "normal" if p.stacked else "none"},
        }
    return {"defaults": defaults, "overrides": []}


def _options(p: Panel) -> dict[str, Any]:
    if p.kind == "stat":
        return {
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "auto",
        }
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def _panel(p: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    if len(p.targets) > len(_REF_IDS):
        raise LayoutError(f"panel {p.title!r} has {len(p.targets)} queries")
    return {
        "id": panel_id,
        "type": p.kind,
        "title": p.title,
        "description": p.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": p.height, "w": p.width, "x": x, "y": y},
        "fieldConfig": _field_config(p),
        "options": _options(p),
        "targets": [
            {"datasource": DATASOURCE, "expr": t.expr, "legendFormat": t.legend or "__auto",
             "range": True, "refId": _REF_IDS[i]}
            for i, t in enumerate(p.targets)
        ],
    }


def _variable(v: Variable) -> dict[str, Any]:
    return {
        "name": v.name,
        "label": v.label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": v.query,
        "query": {"query": v.query, "refId": v.name},
        "includeAll": v.include_all,
        "allValue": ".*",
        "multi": v.multi,
        "current": {},
        "refresh": 2,
        "sort": 1,
        "hide": 0,
        "regex": "",
    }


def _datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "refresh": 1,
        "regex": "",
    }


def _links(runbook_base: str) -> list[dict[str, Any]]:
    return [{"title": "Runbooks", "type": "link", "url": runbook_base, "icon": "doc", "targetBlank": True,
             "tooltip": "One section per Velocity alert: meaning, impact, diagnosis, mitigation",
             "asDropdown": False, "includeVars": False, "keepTime": False, "tags": []}]


def render(d: Dashboard, *, runbook_base: str = DEFAULT_RUNBOOK_BASE_URL) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    next_id = 1
    y = 0
    for row in d.rows:
        panels.append({"id": next_id, "type": "row", "title": row.title, "collapsed": False, "panels": [],
                       "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y}})
        next_id += 1
        y += 1
        x = 0
        line_height = 0
        for p in row.panels:
            if not 0 < p.width <= GRID_WIDTH:
                raise LayoutError(f"panel {p.title!r} is {p.width} columns wide")
            if x + p.width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            panels.append(_panel(p, next_id, x, y))
            next_id += 1
            x += p.width
            line_height = max(line_height, p.height)
        y += line_height
    return {
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": list(d.tags),
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": _links(runbook_base),
        "templating": {"list": [_datasource_variable(), *(_variable(v) for v in d.variables)]},
        "panels": panels,
    }
