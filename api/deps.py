"""Dependencies injected into routes: settings and the shared Elasticsearch client."""

from __future__ import annotations

from elasticsearch import AsyncElasticsearch
from fastapi import Request

from pipeline.settings import Settings


def get_es(request: Request) -> AsyncElasticsearch:
    return request.app.state.es


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings
