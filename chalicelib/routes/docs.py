"""The machine-readable contract, `GET /openapi.json`, and the API reference page that renders it, `GET /docs`
(public: they hold no secrets).

The page is Redoc, served from the app itself (`GET /docs/redoc.standalone.js`, the npm package's bundle that
`python -m rewardgate_ops.vendor` puts in `chalicelib/vendor/`), never from a CDN; its URLs are relative, so it
works under a stage prefix (`/api/docs`) as well as locally.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from chalice import Blueprint, Response

from chalicelib import errors
from chalicelib.edge.registry import PUBLIC, Reply, operation
from chalicelib.http import json_response

bp = Blueprint(__name__)

BUNDLE = Path(__file__).resolve().parents[1] / "vendor" / "redoc.standalone.js"
HTML = "text/html; charset=utf-8"
JAVASCRIPT = "text/javascript; charset=utf-8"
# Everything from the app itself: the bundle's one outside reference (its "API docs by Redocly" logo on a CDN)
# is blocked rather than fetched; styled-components needs inline styles, the search index a blob: worker.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rewardgate API reference</title>
<link rel="icon" href="data:,">
</head>
<body>
<redoc spec-url="openapi.json" hide-download-button="false"></redoc>
<script src="docs/redoc.standalone.js"></script>
</body>
</html>
"""


@operation(bp, "GET", "/openapi.json", summary="The OpenAPI 3.1 document of this API", access=PUBLIC, tags=("docs",),
           responses={200: Reply("the OpenAPI 3.1 document (docs/openapi.json in the repository)",
                                 {"type": "object", "required": ["openapi", "info", "paths"]})},
           examples={200: {"openapi": "3.1.0", "info": {"title": "rewardgate", "version": "0.1.0"}, "paths": {}}})
def openapi_document() -> Any:
    """The OpenAPI 3.1 document of every route, generated from the typed models."""
    from chalicelib.edge.openapi import document

    return json_response(document(bp.current_app), headers={"Cache-Control": "public, max-age=300"})


@operation(bp, "GET", "/docs", summary="The API reference page", access=PUBLIC, tags=("docs",),
           responses={200: Reply("an HTML page that renders /openapi.json with Redoc", {"type": "string"}, HTML)},
           examples={200: PAGE})
def api_reference() -> Any:
    """The API reference: every operation, its parameters, bodies, answers and examples, rendered by Redoc."""
    return Response(body=PAGE, status_code=200, headers={"Content-Type": HTML, "Cache-Control": "public, max-age=300",
                                                         "Content-Security-Policy": CSP})


@operation(bp, "GET", "/docs/redoc.standalone.js", summary="The API reference page's Redoc bundle", access=PUBLIC,
           tags=("docs",), errors=(errors.NotFound,),
           responses={200: Reply("Redoc's standalone bundle (npm package redoc)", {"type": "string"}, JAVASCRIPT)},
           examples={200: "/*! Redoc standalone bundle */"})
def api_reference_bundle() -> Any:
    """Redoc's standalone bundle, from the app's own package (no CDN); 404 where it was not vendored."""
    return Response(body=_bundle(), status_code=200,
                    headers={"Content-Type": JAVASCRIPT, "Cache-Control": "public, max-age=86400"})


@functools.cache
def _read_bundle() -> str:
    return BUNDLE.read_text(encoding="utf-8")


def _bundle() -> str:
    if not BUNDLE.exists():
        raise errors.NotFound("the API reference bundle is not installed here (python -m rewardgate_ops.vendor)")
    return _read_bundle()
