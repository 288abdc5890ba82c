"""Issue 24 item 9: the local stack exposes nothing. DynamoDB Local (no bind option, any credentials) and moto
(whose Secrets Manager holds the local secrets) are reachable only from this machine's loopback and only by this
user's processes; the local `@connections` endpoint answers only the stack's own workers."""

from __future__ import annotations

import json
import os
import socket
import threading
import urllib.error
import urllib.request

import boto3
import pytest

from chalicelib.live import config as live_config
from chalicelib.live import gateway
from rewardgate_ops import private_relay, services


def lan_address() -> str | None:
    """This machine's address on its outward interface (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.parametrize(("allow", "asked"), [(None, True), ("1", None)])
def test_local_stack__starts_both_services_privately_unless_exposure_accepted(tmp_path, monkeypatch, allow, asked):
    from rewardgate_ops import local_stack

    # GIVEN a local stack whose services record how they were asked to start (and stop it there)
    asked_for: dict[str, object] = {}

    def record(name: str):
        def start(*_args, private=False, **_kwargs):
            asked_for[name] = private
            if name == "moto":
                raise services.ServiceError("stopped by the test")
            return services.Service(name, 0, _Done())
        return start

    monkeypatch.setattr(services, "start_dynamodb_local", record("dynamodb"))
    monkeypatch.setattr(services, "start_moto_server", record("moto"))
    if allow is None:
        monkeypatch.delenv("RG_LOCAL_ALLOW_EXPOSED", raising=False)
    else:
        monkeypatch.setenv("RG_LOCAL_ALLOW_EXPOSED", allow)
    ports = [services.free_port() for _ in range(4)]
    options = local_stack.LocalStackOptions(api_port=ports[0], ws_port=ports[1], dynamodb_port=ports[2],
                                            moto_port=ports[3], state_dir=tmp_path, reload=False)
    stack = local_stack.LocalStack(options)
    # WHEN it starts
    with pytest.raises(services.ServiceError):
        stack.start()
    # THEN both were required to run privately (refusing where they cannot), or merely tried when the developer
    # accepted the exposure
    assert asked_for == {"dynamodb": asked, "moto": asked}


class _Done:
    """A process that has already exited (the recorded stand-in's)."""

    pid = 0

    def poll(self) -> int:
        return 0


def reachable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


needs_namespaces = pytest.mark.skipif(not private_relay.available(),
                                      reason="no unprivileged network namespaces on this machine")


@needs_namespaces
def test_dynamodb_local__started_privately__not_reachable_from_the_lan_but_served_on_loopback(tmp_path):
    address = lan_address()
    assert address is not None, "this test needs a non-loopback interface"
    port = services.free_port()
    ddb = services.start_dynamodb_local(port, log_path=tmp_path / "ddb.log", private=True)  # as the stack does
    try:
        # WHEN another machine (this machine's LAN address stands for it) connects to DynamoDB Local's port
        from_lan = reachable(address, port)
        # THEN nothing answers there, while this user's processes are served on loopback
        client = boto3.client("dynamodb", endpoint_url=ddb.endpoint, region_name="us-east-1",
                              aws_access_key_id="any", aws_secret_access_key="any")
        client.create_table(TableName="private_table", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST")
        print(f"DynamoDB Local port {port}: from {address} reachable={from_lan}; "
              f"tables on loopback={client.list_tables()['TableNames']}")
        assert from_lan is False
        assert client.list_tables()["TableNames"] == ["private_table"]
    finally:
        ddb.stop()
    assert not reachable("127.0.0.1", port)  # stopped with its namespace, nothing left listening


def test_private_relay__socket_of_another_user__refused():
    # GIVEN a connected loopback pair: the relay identifies the peer's socket owner from /proc/net/tcp
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    server, peer = listener.accept()
    try:
        # THEN the owner found is this user; a socket no one holds has none (refused)
        assert private_relay.socket_owner(peer, server.getsockname()) == os.getuid()
        assert private_relay.socket_owner(("127.0.0.1", 1), server.getsockname()) is None
    finally:
        for sock in (client, server, listener):
            sock.close()


def test_local_connections__without_the_stacks_token__403__the_stacks_workers_served(monkeypatch):
    import app
    from rewardgate_ops.local_api import make_server
    from rewardgate_ops.local_ws import WebSocketGateway, app_handlers

    # GIVEN the local API with its @connections endpoint, as the local stack runs it (with its token)
    ws = WebSocketGateway(app_handlers(app.app))
    server = make_server(app.app, "127.0.0.1", services.free_port(), ws_gateway=ws, connections_token="stack-token")
    threading.Thread(target=server.server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server.server_address[1]}"
    try:
        # WHEN any other local process posts to a connection
        request = urllib.request.Request(f"{url}/@connections/abc=", data=b'{"op":"event"}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        # THEN it is refused before reaching any connection
        assert refused.value.code == 403 and json.loads(refused.value.read()) == {"message": "Forbidden"}
        # AND the stack's own workers (the gateway with the stack's token) are served: no such connection (Gone)
        monkeypatch.setenv("RG_LIVE_CONNECTIONS_URL", url)
        monkeypatch.setenv("RG_LIVE_CONNECTIONS_TOKEN", "stack-token")
        live_config.reset()
        gateway.reset()
        with pytest.raises(gateway.Gone):
            gateway.post("abc=", "{}")
    finally:
        server.server.shutdown()
        server.server.server_close()
        monkeypatch.undo()
        live_config.reset()
        gateway.reset()
