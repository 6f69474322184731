"""A listening query that does not parse, as a 422 that says where and what was expected."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from pipeline.listening.parser import QuerySyntaxError


class SyntaxProblem(Exception):
    """Raised by routes for a ``QuerySyntaxError``; ``api.main`` answers it with ``syntax_response``."""

    def __init__(self, exc: QuerySyntaxError):
        super().__init__(str(exc))
        self.exc = exc


def syntax_response(problem: SyntaxProblem) -> JSONResponse:
    exc = problem.exc
    return JSONResponse(status_code=422, content={
        "error": f"query syntax error {exc}", "position": exc.position, "expected": exc.expected, "got": exc.got})
