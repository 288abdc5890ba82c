"""The local API server: a threaded HTTP server in front of the same Chalice app API Gateway would call.

`python -m rewardgate_ops.local_api --port 8000` (the local stack runs it). It reuses Chalice's own
local gateway (`chalice.local`: HTTP request → API Gateway proxy event → the app → HTTP answer), so a
route behaves exactly as under `chalice local`, with three differences:

- a thread per connection and a listen backlog of `BACKLOG` (socketserver's default is 5, which is
  what made `chalice local` reset connections under 32 concurrent clients): 64 and more clients are
  queued by the kernel, never refused;
- the gateway's own refusals are problem+json like the app's (an unknown path is
  `404 route_not_found`; in AWS the `GatewayResponses` do the same);
- no request log on stderr: the app writes one structured access line per request;
- the WebSocket API (`--ws-port`, `rewardgate_ops.local_ws`): its WebSocket server runs in this process
  beside the HTTP server, and its `@connections` management API answers on this HTTP port
  (`/@connections/{id}`), where `RG_LIVE_CONNECTIONS_URL` points.

The app object is converted once, per Chalice's rules for thread-local `current_request`.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import sys
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from chalice.config import Config
from chalice.local import ChaliceRequestHandler, CustomLocalChalice, LocalChalice, LocalDevServer

ROOT = Path(__file__).resolve().parent.parent
BACKLOG = 1024
STAGE = "local"


class LocalApiServer(ThreadingHTTPServer):
    """One thread per connection, a deep accept backlog, threads that never block shutdown."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = BACKLOG


CONNECTIONS_PREFIX = "/@connections/"
TOKEN_HEADER = "x-rg-connections-token"  # noqa: S105 - the header chalicelib.live.gateway sends


class ApiRequestHandler(ChaliceRequestHandler):
    """Chalice's local handler, with the gateway's own refusals as problem+json and no stderr log; `/@connections/`
    goes to the WebSocket API's management endpoint when one is mounted."""

    def _generic_handle(self) -> None:
        gateway = getattr(self.server, "ws_gateway", None)
        if gateway is None or not self.path.startswith(CONNECTIONS_PREFIX):
            super()._generic_handle()
            return
        from urllib.parse import unquote

        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        expected = getattr(self.server, "connections_token", None)
        offered = self.headers.get(TOKEN_HEADER) or ""
        if expected is not None and not hmac.compare_digest(offered.encode(), expected.encode()):
            # Only the stack's own workers hold the token; anyone else reaching this port gets nothing.
            refusal = json.dumps({"message": "Forbidden"}).encode()
            self._send_http_response(403, {"Content-Type": "application/json"}, refusal)
            return
        connection_id = unquote(self.path[len(CONNECTIONS_PREFIX):].split("?", 1)[0])
        answer = gateway.manage(self.command, connection_id, body)
        self._send_http_response(answer.status, dict(answer.headers), answer.body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def _send_error_response(self, error: Any) -> None:
        from chalicelib import errors
        from chalicelib.http import PROBLEM_JSON, problem_body

        if error.CODE == 403 and b"Missing Authentication Token" in (error.body or b""):
            problem = errors.RouteNotFound(f"no route answers {self.command} {self.path.split('?', 1)[0]}")
        else:
            problem = errors.RouteNotFound("the gateway refused the request")
        body = json.dumps(problem_body(problem), separators=(",", ":")).encode()
        self._send_http_response(404, {"Content-Type": PROBLEM_JSON}, body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A method no route serves (http.server's 501 page) is refused as the app refuses one: 405 problem+json."""
        if code != 501:
            super().send_error(code, message, explain)
            return
        from chalicelib import errors
        from chalicelib.http import PROBLEM_JSON, problem_body

        problem = errors.MethodNotAllowed(f"the local API does not serve {self.command}")
        self.close_connection = True  # its body, if any, was not read
        self._send_http_response(405, {"Content-Type": PROBLEM_JSON, "Allow": "DELETE, GET, HEAD, OPTIONS, PATCH, "
                                       "POST, PUT", "Connection": "close"},
                                 json.dumps(problem_body(problem), separators=(",", ":")).encode())

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the app's access line records every request."""


def api_config(project_dir: Path = ROOT, stage: str = STAGE) -> Config:
    """Chalice's configuration of the API function for a stage (timeout, memory: the Lambda context's)."""
    config = json.loads((project_dir / ".chalice" / "config.json").read_text())
    return Config(chalice_stage=stage, function_name="api_handler", config_from_disk=config,
                  user_provided_params={"project_dir": str(project_dir)})


def make_server(app: Any, host: str, port: int, config: Config | None = None,
                ws_gateway: Any = None, connections_token: str | None = None) -> LocalDevServer:
    """A local API server for `app` on host:port (call `serve_forever`; `shutdown` from another thread);
    `ws_gateway` (a started `local_ws.WebSocketGateway`) gets its `@connections` endpoint mounted here, answering
    only calls carrying `connections_token` (header `x-rg-connections-token`) when one is given."""
    if not isinstance(app, LocalChalice):
        # chalice.local.create_local_server's conversion: `current_request` becomes thread-local
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
    server = LocalDevServer(app, config or api_config(), host, port, handler_cls=ApiRequestHandler,
                            server_cls=LocalApiServer)
    server.server.ws_gateway = ws_gateway  # type: ignore[attr-defined]
    server.server.connections_token = connections_token  # type: ignore[attr-defined]
    return server


def main(argv: list[str] | None = None) -> None:
    """Serve the app of `app.py` until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m rewardgate_ops.local_api", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--ws-port", type=int, default=0, help="serve the WebSocket API on this port (0: none)")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import app

    gateway = None
    if args.ws_port:
        from rewardgate_ops.local_ws import WebSocketGateway, app_handlers

        gateway = WebSocketGateway(app_handlers(app.app), stage=STAGE)
        gateway.start(args.host, args.ws_port)
    # The local stack hands its own processes a token for @connections (RG_LIVE_CONNECTIONS_TOKEN).
    server = make_server(app.app, args.host, args.port, ws_gateway=gateway,
                         connections_token=os.environ.get("RG_LIVE_CONNECTIONS_TOKEN") or None)
    print(f"rewardgate API on http://{args.host}:{args.port} (threaded, backlog {BACKLOG})"
          + (f"; WebSocket API on ws://{args.host}:{args.ws_port}" if gateway else ""), flush=True)
    try:
        server.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if gateway is not None:
            gateway.stop()
        server.server.server_close()


if __name__ == "__main__":
    main()
