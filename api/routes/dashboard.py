"""The dashboard: a static page at ``/`` (``api/static/``: HTML, JS, CSS, a vendored Chart.js).

The page holds no data and no key of its own: it asks for an API key, keeps it in the tab's
``sessionStorage`` and calls the ``/v1`` routes with ``Authorization: Bearer`` like any client,
so each panel shows what that key's role may read. ``GET /dashboard/config`` tells it the brands
of ``brands.yaml`` and the teams of ``routing.yaml`` (the pickers); it needs ``mentions:read``,
which every role has. The page and its assets are not API routes (plain Starlette routes, no key:
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

from api.auth.scopes import MENTIONS_READ
from api.deps import get_app_settings, require
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


@router.get("/dashboard/config", response_model=DashboardConfig, summary="Brands and teams for the dashboard's pickers")
async def dashboard_config(settings: Settings = Depends(get_app_settings)) -> DashboardConfig:
    files = (Path(settings.brands_file), Path(settings.routing_file))
    return _config(*files, tuple(f.stat().st_mtime_ns for f in files))  # re-read when a file changes


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
