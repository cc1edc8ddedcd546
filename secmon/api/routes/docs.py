"""``/docs``: the API reference, rendered on the server from the OpenAPI spec.

FastAPI's Swagger UI loads its script from a CDN, which the closed network (and the CSP)
rule out; this page needs nothing but the spec.  It also lists which permission — and so
which roles — each operation needs, read from the route's dependencies.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute

from secmon.api.auth import PERMISSIONS
from secmon.api.pages import render

router = APIRouter(include_in_schema=False)


def _permission(dep: Dependant) -> str | None:
    name = getattr(dep.call, "__name__", "")
    if name.startswith("allow_"):
        wanted = name[len("allow_"):]
        for perm in PERMISSIONS:
            if perm.replace(".", "_") == wanted:
                return perm
    for sub in dep.dependencies:
        found = _permission(sub)
        if found is not None:
            return found
    return None


def _authenticated(dep: Dependant) -> bool:
    return getattr(dep.call, "__name__", "") == "principal" or any(_authenticated(d) for d in dep.dependencies)


def route_permissions(app: FastAPI) -> dict[tuple[str, str], str | None]:
    """(method, path) → the permission an API operation needs; ``"authenticated"`` for any
    logged-in caller; None for public ones.  Read from the app's own routers
    (``app.state.routers``), which carry their full paths."""
    out: dict[tuple[str, str], str | None] = {}
    for router in app.state.routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.include_in_schema:
                perm = _permission(route.dependant) or ("authenticated" if _authenticated(route.dependant) else None)
                for method in route.methods or ():
                    out[(method, route.path)] = perm
    return out


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request) -> Response:
    app: FastAPI = request.app
    spec: dict[str, Any] = app.openapi()
    perms = route_permissions(app)
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            perm = perms.get((method.upper(), path))
            roles = sorted(PERMISSIONS[perm]) if perm in PERMISSIONS else (["any"] if perm else [])
            params = [{"name": p["name"], "in": p["in"], "required": p.get("required", False),
                       "description": p.get("description", "")} for p in op.get("parameters", [])]  # fmt: skip
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            groups.setdefault((op.get("tags") or ["other"])[0], []).append({
                "method": method.upper(), "path": path, "summary": op.get("summary", ""), "roles": roles,
                "params": params, "body": body.get("$ref", "").rsplit("/", 1)[-1],
                "responses": sorted(op.get("responses", {})),
            })  # fmt: skip
    return render(request, "docs.html", groups=groups, info=spec.get("info", {}))
