"""Liveness and readiness: /healthz says the process is up, /readyz that ES answers."""

from __future__ import annotations

from elasticsearch import AsyncElasticsearch
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from api.deps import get_es

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The API process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Ready to serve: Elasticsearch answers with a yellow or green cluster",
            responses={503: {"description": "Not ready: Elasticsearch does not answer, or its cluster is red."}})
async def readyz(es: AsyncElasticsearch = Depends(get_es)) -> JSONResponse:
    try:
        # cluster.health, not ping(): the minimal ES distribution answers GET / with 405.
        health = await es.options(request_timeout=2).cluster.health()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", with the reason
        return JSONResponse(status_code=503, content={"status": "not ready", "elasticsearch": str(exc)[:200]})
    status = health.get("status")
    ready = status in ("green", "yellow")
    return JSONResponse(
        status_code=200 if ready else 503,
        content={"status": "ready" if ready else "not ready", "elasticsearch": status},
    )
