"""Errors as RFC 9457 problem details (``application/problem+json``). A field problem names its
JSON path with the CLI's reason (d1/validation.py); no answer ever repeats a value it was given."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from d1.validation import FieldError, InvalidOrder

PROBLEM = "application/problem+json"
TYPE_BASE = "https://docs.cards.example/problems/"  # documented in docs/issuer-api.md, "Errors"

TITLES = {
    400: "The request is invalid",
    401: "Authentication required",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported media type",
    422: "The request is invalid",
    429: "Too many requests",
    503: "Temporarily unavailable",
}


class FieldProblem(BaseModel):
    path: str = Field(description="JSON path of the member in the request body, e.g. `$.shipment.deliveryAddress`")
    detail: str = Field(description="What is wrong (never the value itself)")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": TYPE_BASE + "invalid-request",
                    "title": "The request is invalid",
                    "status": 400,
                    "detail": "1 problem(s)",
                    "errors": [{"path": "$.cardData.pan", "detail": "fails the Luhn check digit"}],
                }
            ]
        }
    )

    type: str = Field(description="URI naming the kind of problem")
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] | None = Field(default=None, description="Every field problem at once")
    warnings: list[FieldProblem] | None = None


class ProblemError(Exception):
    def __init__(
        self,
        status: int,
        kind: str,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] = (),
        warnings: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status, self.kind, self.detail = status, kind, detail
        self.errors, self.warnings, self.headers = list(errors), list(warnings), dict(headers or {})
        super().__init__(detail or kind)


def invalid(err: InvalidOrder) -> ProblemError:
    return ProblemError(
        400, "invalid-request", f"{len(err.errors)} problem(s)", errors=err.errors, warnings=err.warnings
    )


def problem_response(problem: ProblemError) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + problem.kind,
        "title": TITLES.get(problem.status, "Error"),
        "status": problem.status,
    }
    if problem.detail:
        body["detail"] = problem.detail
    if problem.errors:
        body["errors"] = [{"path": e.path, "detail": e.reason} for e in problem.errors]
    if problem.warnings:
        body["warnings"] = [{"path": w.path, "detail": w.reason} for w in problem.warnings]
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM, headers=problem.headers)


def _path(loc: Sequence[Any]) -> str:
    # FastAPI's location starts with where the value came from (path, query, header, body).
    where, *rest = loc or ("body",)
    if where == "body":
        return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest)
    return f"{where}:" + ".".join(str(p) for p in rest)


async def _on_problem(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(exc)


async def _on_validation(_: Request, exc: Exception) -> JSONResponse:
    # FastAPI's own answer quotes the input: rebuilt from the locations and messages only.
    assert isinstance(exc, RequestValidationError)
    errors = [FieldError(_path(e.get("loc", ())), str(e.get("msg", "invalid"))) for e in exc.errors()]
    return problem_response(ProblemError(400, "invalid-request", f"{len(errors)} problem(s)", errors=errors))


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names the methods of the first route on the path only; a path has several.
        headers["allow"] = ", ".join(sorted(_methods_of(request)))
    return problem_response(ProblemError(exc.status_code, kind, str(exc.detail), headers=headers))


def _methods_of(request: Request) -> set[str]:
    """From the app's OpenAPI paths (the routes as documented)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {m.upper() for m in operations}
    return methods


HANDLERS = {ProblemError: _on_problem, RequestValidationError: _on_validation, StarletteHTTPException: _on_http}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of an operation (OpenAPI ``responses``)."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {s: {"description": TITLES.get(s, "Error"), "content": {PROBLEM: {"schema": schema}}} for s in statuses}
