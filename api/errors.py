"""The API's error answers as the OpenAPI document states them: ``{"error": "<message>"}``, some
with more fields. ``api.main`` produces them; routers and routes declare which they can give.

Every ``/v1`` router gets ``COMMON_ERRORS`` (a key problem, a bad parameter, a busy or absent
backend); a route adds ``errors(404, 409, 413)`` for the ones only it can give.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """A 4xx or 5xx answer."""

    error: str = Field(..., description="What went wrong, for people.")


class InvalidRequest(ErrorBody):
    """A 422: parameters or body that do not validate, or a listening query that does not parse."""

    details: list[str] | None = Field(None, description="One line per invalid parameter: '<name>: <problem>'.")
    position: int | None = Field(None, description="Query syntax error: where (0-based characters).")
    expected: str | None = Field(None, description="Query syntax error: what the parser expected there.")
    got: str | None = Field(None, description="Query syntax error: what it found.")


class Unavailable(ErrorBody):
    """A 503: a backend (Elasticsearch, Kafka) is down or failing; nothing was changed."""

    retry_after_s: int | None = Field(None, description="Retry after this many seconds.")


_ANSWERS: dict[int, tuple[type[ErrorBody], str]] = {
    400: (ErrorBody, "A parameter the route or the search backend refuses (a bad cursor, 'from' after 'to', ...)."),
    401: (ErrorBody, "No API key, or a malformed, unknown or revoked one."),
    403: (ErrorBody, "The key's role lacks the scope this route needs."),
    404: (ErrorBody, "Nothing is stored under this id."),
    409: (ErrorBody, "A conflicting change: someone else's edit, or an id that exists."),
    413: (ErrorBody, "The request body is too large."),
    422: (InvalidRequest, "Invalid parameters or body."),
    429: (ErrorBody, "The key's rate limit is exceeded: retry after the Retry-After header's seconds."),
    503: (Unavailable, "A backend is unavailable: retry shortly."),
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses (FastAPI's ``responses=``)."""
    return {status: {"model": _ANSWERS[status][0], "description": _ANSWERS[status][1]} for status in statuses}


COMMON_ERRORS = errors(400, 401, 403, 422, 429, 503)
