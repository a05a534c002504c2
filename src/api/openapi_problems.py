"""Say in the OpenAPI description what every error already is: RFC 9457 problem+json.

FastAPI documents only the 2xx it knows and a 422 shaped like its own validation error; our
errors (errors.py) are problem documents with a stable `code`. Each operation gets the
problem responses it can answer, so clients and schemathesis can check them. Provider
callbacks (tag "payments") answer in the provider's own protocol and declare their own.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.errors import PROBLEM

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details; `code` is stable, `title` is for people.",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}
ALWAYS = {
    "422": "The request is not valid, or the ledger refuses it (code says why)",
    "4XX": "Any other refusal: not found, conflict, bad cursor ... (code says which)",
    "503": "The database is not reachable or a read model is catching up: retry",
}
SECURED = {
    "401": "No access token, or one that is expired or not valid",
    "403": "The token's role or scope does not allow this",
}
OWN_PROTOCOL_TAGS = {"payments"}
INPUT_GUARD = "Text PostgreSQL cannot store (a NUL character): see api.input_guard"
METHODS = {"get", "put", "post", "patch", "delete"}


def install(app: FastAPI) -> None:
    """Wrap app.openapi so the generated description is completed once, then cached."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_problems(generate())
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def document_problems(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if method in METHODS:
                _add_problems(operation, _problems_of(operation))


def _problems_of(operation: dict[str, Any]) -> dict[str, str]:
    if OWN_PROTOCOL_TAGS & set(operation.get("tags", [])):
        return {"422": INPUT_GUARD}  # refused before the provider's protocol is spoken
    return {**ALWAYS, **(SECURED if operation.get("security") else {})}


def _add_problems(operation: dict[str, Any], wanted: dict[str, str]) -> None:
    responses = operation.setdefault("responses", {})
    for status, description in wanted.items():
        responses[status] = {
            "description": description,
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
