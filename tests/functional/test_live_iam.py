"""Every AWS call of live push's functions (`$connect`, `$default`, `$disconnect`, the push worker) is allowed by
the role the deploy template gives it, `@connections` calls included (see test_deploy_iam_coverage.py)."""

from __future__ import annotations

import threading

from chalicelib import process_state
from chalicelib.live import push
from chalicelib.routes import live as live_routes
from tests.functional.test_deploy_iam_coverage import denied_calls, recorder  # noqa: F401 - `recorder` is a fixture
from tests.live_support import connect, disconnect, drain_live, message, new_connection_id, purge_live
from tests.play_support import danmaku, ingest_direct, install_play_key, make_anchor, make_app, open_live

FUNCTIONS = {"websocket_connect": "WebsocketConnect", "websocket_message": "WebsocketMessage",
             "websocket_disconnect": "WebsocketDisconnect", "live_push": "LivePush"}


def test_iam__every_call_of_live_push__allowed_by_its_functions_role(client, recorder, monkeypatch):  # noqa: F811
    import app
    from rewardgate_ops.local_api import make_server
    from rewardgate_ops.local_ws import WebSocketGateway, app_handlers
    from rewardgate_ops.services import free_port

    # GIVEN an @connections endpoint (the local emulation: no socket open, so every post answers Gone) and a game
    ws = WebSocketGateway(app_handlers(app.app))
    server = make_server(app.app, "127.0.0.1", free_port(), ws_gateway=ws)
    threading.Thread(target=server.server.serve_forever, daemon=True).start()
    monkeypatch.setenv("RG_LIVE_CONNECTIONS_URL", f"http://127.0.0.1:{server.server.server_address[1]}")
    process_state.reset()
    monkeypatch.setattr(live_routes, "CONNECT_PUSH_DELAY_S", 0)
    try:
        install_play_key()
        purge_live()
        play = make_app(client, sandbox=True)
        anchor = make_anchor(client)
        data = open_live(client, play).start(anchor.code)["data"]
        ingest_direct(anchor.room_id, [danmaku("a"), danmaku("b")], test=True)
        kept, gone = new_connection_id(), new_connection_id()
        # WHEN each function runs through its real handler
        with recorder.acting("websocket_connect"):
            for connection_id in (kept, gone):
                assert connect(connection_id, data["websocket_info"]["auth_body"])["statusCode"] == 200
        with recorder.acting("websocket_message"):
            message(kept, {"op": "resume", "after_seq": 0})  # reads the stream, posts, moves the cursor
            message(kept, {"op": "ping"})
            message(new_connection_id(), {"op": "ping"})  # not registered: error frame, then closed
        monkeypatch.setattr(push, "GONE_GRACE_MS", 0)
        with recorder.acting("live_push"):
            drain_live()  # fan-out, posts answered Gone: connections removed
        with recorder.acting("websocket_disconnect"):
            disconnect(kept)
    finally:
        server.server.shutdown()
        server.server.server_close()
        process_state.reset()
    # THEN every call, @connections included, is allowed by that function's own role
    assert set(recorder.calls) == set(FUNCTIONS)
    operations = {op for calls in recorder.calls.values() for _, op, _ in calls}
    assert {"PostToConnection", "DeleteConnection", "TransactWriteItems", "SendMessageBatch"} <= operations
    assert denied_calls(recorder, FUNCTIONS, unexercised_shown="live") == []
