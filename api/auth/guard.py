"""Authentication, rate limits and scope checks for routes: ``Depends(require(scope))``.

A client sends its API key as ``Authorization: Bearer esk_...`` or ``X-API-Key: esk_...``.
No key or a malformed, unknown, wrong or revoked one: 401. A valid key over its rate: 429 with
``Retry-After``. A valid key whose role lacks the route's scope: 403. The key record comes from
``api.auth.keys.KeyStore`` (cached); the bootstrap admin key (``EARSHOT_BOOTSTRAP_ADMIN_KEY``)
is checked against its hash kept in memory and needs no Elasticsearch.

A key bound to teams (``teams`` on its record) reads and acts on those teams' triage queues only:
routes that name a team call ``check_team`` (403 for another team). An unbound key, whatever its
role, and the admin role see every team.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth.scopes import ADMIN, INGEST_WRITE, allows, hash_secret, parse_key, secret_matches

bearer = HTTPBearer(auto_error=False, scheme_name="bearerKey", bearerFormat="esk_<key id>_<secret>",
                    description="An earshot API key: `Authorization: Bearer esk_...` (`earshot keys create`).")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="headerKey",
                              description="The same API key in an `X-API-Key` header.")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a stored key, the bootstrap key, or a signed ingest sender (no key, no role)."""

    key_id: str
    name: str
    role: str | None
    rate_per_minute: int | None
    via: str  # "key", "bootstrap" or "signature"
    teams: tuple[str, ...] = ()  # the teams a bound key serves; () = not bound (every team)

    def serves(self, team: str) -> bool:
        """May this caller read and act on ``team``'s queue? Unbound keys and the admin role: always."""
        return not self.teams or self.role == "admin" or team in self.teams

    def serves_any(self, teams: list[str] | tuple[str, ...]) -> bool:
        return not self.teams or self.role == "admin" or any(team in self.teams for team in teams)


def team_refusal(principal: Principal, what: str) -> HTTPException:
    """The 403 for a team-bound key reaching past its teams."""
    return HTTPException(403, f"this key serves the teams {', '.join(principal.teams)} only; {what}")


def check_team(principal: Principal, team: str) -> None:
    """403 unless ``principal`` serves ``team``."""
    if not principal.serves(team):
        raise team_refusal(principal, f"it may not read or act on the {team!r} queue")


def _unauthenticated(request: Request, message: str) -> HTTPException:
    request.state.auth_required = True
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def _presented(credentials: HTTPAuthorizationCredentials | None, header_key: str | None) -> str | None:
    return credentials.credentials if credentials else header_key


async def _identify(request: Request, text: str) -> Principal:
    state = request.app.state
    bootstrap: str | None = state.bootstrap_key_sha256
    if bootstrap and hmac.compare_digest(hash_secret(text.strip()), bootstrap):
        return Principal("bootstrap", "bootstrap", "admin", None, "bootstrap")
    parsed = parse_key(text)
    if parsed is None:
        raise _unauthenticated(request, "malformed API key: expected esk_<key id>_<secret>")
    key_id, secret = parsed
    request.state.audit_key_id = key_id
    record = await state.keys.find(key_id)
    # One answer for unknown ids and wrong secrets: the response does not reveal which key ids exist.
    if record is None or not secret_matches(secret, record.secret_sha256):
        raise _unauthenticated(request, "unknown API key")
    if not record.active:
        raise _unauthenticated(request, f"API key {key_id} was revoked")
    return Principal(record.key_id, record.name, record.role, record.rate_per_minute, "key", tuple(record.teams))


async def authenticate(request: Request, text: str | None) -> Principal:
    """The caller of this request, rate-limited; once per request whatever the number of checks."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    if not text:
        raise _unauthenticated(request, "send an API key: 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    principal = await _identify(request, text)
    request.state.principal = principal
    settings = request.app.state.settings
    wait = request.app.state.rate_limiter.wait_s(principal.key_id, principal.rate_per_minute or settings.api_rate_per_minute)
    if wait > 0:
        raise HTTPException(429, f"rate limit of key {principal.key_id} exceeded; retry in {math.ceil(wait)} s",
                            headers={"Retry-After": str(math.ceil(wait))})
    return principal


def _check_scope(request: Request, principal: Principal, scope: str) -> None:
    if principal.role is None or not allows(principal.role, scope):
        raise HTTPException(403, f"this key's role ({principal.role}) lacks the scope {scope!r} this route needs")


def require(scope: str) -> Callable:
    """A dependency: the caller (``Principal``) if its key's role grants ``scope``; else 401/403/429."""

    async def check(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                    header_key: str | None = Depends(api_key_header)) -> Principal:
        request.state.auth_required = True
        principal = await authenticate(request, _presented(credentials, header_key))
        _check_scope(request, principal, scope)
        return principal

    check.scope = scope  # read by api.main to document each route's scope and by the access tests
    check.__name__ = f"require_{scope.replace(':', '_')}"
    return check


require_admin = require(ADMIN)  # routes with no finer scope: only the admin role


async def ingest_caller(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
                        header_key: str | None = Depends(api_key_header)) -> Principal | None:
    """``POST /v1/ingest``: a key with ``ingest:write``, or (with ``EARSHOT_INGEST_SECRET`` set) no key
    and a valid body signature, which the route checks once it has read the body: None then."""
    request.state.auth_required = True
    text = _presented(credentials, header_key)
    if text:  # a key, when sent, is judged on its own: a bad key is refused even with a good signature
        principal = await authenticate(request, text)
        _check_scope(request, principal, INGEST_WRITE)
        return principal
    if request.app.state.settings.ingest_secret is None:
        raise _unauthenticated(request, "send an API key with the ingest:write scope")
    return None


ingest_caller.scope = INGEST_WRITE  # type: ignore[attr-defined]


def route_scopes(dependant) -> set[str]:
    """The scopes a route's dependencies (at any depth) require."""
    found: set[str] = set()
    for dependency in dependant.dependencies:
        scope = getattr(dependency.call, "scope", None)
        if scope:
            found.add(scope)
        found |= route_scopes(dependency)
    return found


def api_routes(app) -> list[tuple[str, str, set[str]]]:
    """``(method, path template, scopes)`` of every API route of ``app``, prefixes included."""
    from fastapi.routing import APIRoute, iter_route_contexts

    return [(method, context.path_format, route_scopes(context.dependant))
            for context in iter_route_contexts(app.routes) if isinstance(context.original_route, APIRoute)
            for method in sorted(context.methods)]


def document_scopes(app) -> None:
    """Name each route's scope in its OpenAPI operation: in the description and as ``x-scopes``."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            for method, path, scopes in api_routes(app):
                operation = schema["paths"].get(path, {}).get(method.lower())
                if operation is not None and scopes:
                    note = "Needs an API key with scope " + ", ".join(f"`{s}`" for s in sorted(scopes)) + "."
                    operation["description"] = f"{operation.get('description', '')}\n\n{note}".strip()
                    operation["x-scopes"] = sorted(scopes)
        return app.openapi_schema

    app.openapi = openapi
