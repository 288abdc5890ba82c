"""The local API answers a method it does not serve (TRACE, CONNECT, anything) as the app answers one a route
does not take: 405 problem+json, never its HTTP server's 501 HTML page."""

from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest

from tests.problems import TITLES


def _call(api_url: str, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    url = urllib.parse.urlsplit(api_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        connection.request(method, path, headers={"Content-Length": "0"})
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "BREW"])
def test_local_api__unserved_method__405_problem_json(api_url, method):
    # GIVEN the local API WHEN a client sends a method no route serves
    status, headers, body = _call(api_url, method, "/v1/grants")
    # THEN it is refused like any wrong method: 405, problem+json, the methods it does serve
    assert status == 405
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body) == {"type": "urn:rewardgate:problem:method_not_allowed",
                                "title": TITLES["method_not_allowed"], "status": 405, "code": "method_not_allowed",
                                "detail": f"the local API does not serve {method}"}
    assert headers["allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"


def test_local_api__served_method_after_a_trace__still_answered(api_url):
    # the refused request leaves the server serving
    _call(api_url, "TRACE", "/openapi.json")
    status, _, body = _call(api_url, "GET", "/openapi.json")
    assert status == 200 and json.loads(body)["openapi"] == "3.1.0"
