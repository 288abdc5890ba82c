"""The machine-readable contract: `GET /openapi.json` (public; it holds no secrets)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.edge.registry import PUBLIC, Reply, operation
from chalicelib.http import json_response

bp = Blueprint(__name__)


@operation(bp, "GET", "/openapi.json", summary="The OpenAPI 3.1 document of this API", access=PUBLIC, tags=("docs",),
           responses={200: Reply("the OpenAPI 3.1 document (docs/openapi.json in the repository)",
                                 {"type": "object"})})
def openapi_document() -> Any:
    """The OpenAPI 3.1 document of every route, generated from the typed models."""
    from chalicelib.edge.openapi import document

    return json_response(document(bp.current_app), headers={"Cache-Control": "public, max-age=300"})
