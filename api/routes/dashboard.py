"""The dashboard: a static page at ``/`` (``api/static/``: HTML, JS, CSS, a vendored Chart.js).

The page holds no data and no key of its own: it asks for an API key, keeps it in the tab's
``sessionStorage`` and calls the ``/v1`` routes with ``Authorization: Bearer`` like any client,
so each panel shows what that key's role may read. ``GET /dashboard/config`` tells it the brands
of ``brands.yaml`` and the teams of ``routing.yaml`` (the pickers), and who the key is: its role,
the teams it is bound to and the workspaces (views) that role works in (``workspaces``); it needs
``mentions:read``, which every role has. A view is a convenience, not a barrier: every call it
makes is checked by the API on its own. The page and its assets are not API routes (plain Starlette routes, no key:
they hold nothing but code).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from api.auth.scopes import (ALERTS_WRITE, FEED_READ, IR_READ, KEYS_ADMIN, MENTIONS_READ, QUERIES_ADMIN, TRENDS_READ,
                             TRIAGE_READ, scopes_for)
from api.deps import Principal, get_app_settings, require
from api.errors import errors
from pipeline.enrich.brands import BrandMatcher
from pipeline.enrich.routing import RoutingRules
from pipeline.settings import Settings

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
router = APIRouter(tags=["dashboard"], dependencies=[Depends(require(MENTIONS_READ))])


class BrandEntry(BaseModel):
    id: str
    name: str
    competitor: bool
    group: str | None = Field(None, description="The own brand this one is listed under in brands.yaml (itself "
                                                "for an own brand): the default share-of-voice comparison set.")


class DashboardConfig(BaseModel):
    brands: list[BrandEntry]
    teams: list[str]


class Caller(BaseModel):
    name: str
    role: str | None
    teams: list[str] = Field(default_factory=list, description="The teams the key is bound to; empty: all.")
    scopes: list[str]
    views: list[str] = Field(..., description="The workspaces this key works in, the first one opened by default.")


class DashboardConfigOut(DashboardConfig):
    caller: Caller


# Each workspace and the scope its main action needs, in the order the page lists them.
WORKSPACES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("crisis", (ALERTS_WRITE,)), ("comms", (TRENDS_READ,)), ("care", (TRIAGE_READ,)), ("ir", (IR_READ,)),
    ("data", (FEED_READ,)), ("admin", (QUERIES_ADMIN, KEYS_ADMIN)),
)
# The view a role opens on; admin, who supervises every team, opens on the overview (comms).
HOME_VIEW = {"comms": "comms", "crisis": "crisis", "care": "care", "ir": "ir", "data": "data", "admin": "comms"}


def workspaces(role: str | None) -> list[str]:
    """The views of ``role``: those whose scopes it holds, its own team's view first."""
    scopes = scopes_for(role) if role else frozenset()
    views = [view for view, needs in WORKSPACES if all(scope in scopes for scope in needs)]
    home = HOME_VIEW.get(role or "")
    return sorted(views, key=lambda view: view != home)


def brand_entries(specs: list[Any]) -> list[BrandEntry]:
    """Brands in file order; each competitor belongs to the own brand listed above it."""
    entries, own = [], None
    for spec in specs:
        if not spec.competitor:
            own = spec.id
        entries.append(BrandEntry(id=spec.id, name=spec.name, competitor=spec.competitor, group=own))
    return entries


def team_ids(rules: RoutingRules) -> list[str]:
    spec = rules.spec
    teams = {t for route in spec.purposes.values() for t in route.teams}
    teams |= set(spec.fallback_teams) | {t for ts in spec.alerts.values() for t in ts}
    return sorted(teams)


@lru_cache(maxsize=4)
def _config(brands_file: Path, routing_file: Path, _mtimes: tuple[int, int]) -> DashboardConfig:
    return DashboardConfig(brands=brand_entries(BrandMatcher.from_yaml(brands_file).specs),
                           teams=team_ids(RoutingRules.from_yaml(routing_file)))


@router.get("/dashboard/config", response_model=DashboardConfigOut,
            summary="Brands and teams for the dashboard's pickers; the caller's role, teams and workspaces")
async def dashboard_config(settings: Settings = Depends(get_app_settings),
                           principal: Principal = Depends(require(MENTIONS_READ))) -> DashboardConfigOut:
    files = (Path(settings.brands_file), Path(settings.routing_file))
    config = _config(*files, tuple(f.stat().st_mtime_ns for f in files))  # re-read when a file changes
    caller = Caller(name=principal.name, role=principal.role, teams=list(principal.teams),
                    scopes=sorted(scopes_for(principal.role or "")), views=workspaces(principal.role))
    return DashboardConfigOut(brands=config.brands, teams=config.teams, caller=caller)


async def dashboard_page(request: Request) -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


class RevalidatedStaticFiles(StaticFiles):
    """Static files that the browser revalidates (ETag) on each load, so an upgrade is seen at once."""

    def file_response(self, full_path, stat_result, scope: Scope, status_code: int = 200):
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        return response


def install_dashboard(app: FastAPI) -> None:
    """Serve the page at ``/``, its config at ``/dashboard/config`` and its assets under ``/static/``."""
    app.include_router(router, responses=errors(401, 403, 429))
    app.add_route("/", dashboard_page, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount("/static", RevalidatedStaticFiles(directory=STATIC_DIR), name="static")
