"""Fixtures shared by the functional and integration suites, loaded from tests/conftest.py.

chalicelib is imported inside the fixtures, not at module level: the root conftest must set the
environment (table and queue names) before anything from chalicelib is imported.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chalice.test import Client

from chalicelib.secrets import TpAppCredentials
from tests.callback_factory import EventsQueue, new_credentials


@pytest.fixture(scope="module")
def client(aws_stack) -> Client:
    """A chalice test client over the real app (local stage), with a reward-token signing key installed."""
    from tests.rewards_support import chalice_client, install_signing_key

    install_signing_key()
    return chalice_client()


@pytest.fixture
def tp_app() -> TpAppCredentials:
    """A fresh douyin tp app whose credentials are stored (moto's Secrets Manager)."""
    from chalicelib.secrets import put_tp_app

    credentials = new_credentials()
    put_tp_app(credentials)
    return credentials


@pytest.fixture
def queue() -> Iterator[EventsQueue]:
    """The events queue, drained through the real events worker."""
    from chalicelib.routes import tp_apps as routes

    events_queue = EventsQueue(routes.apply_callback_events)
    events_queue.drain()  # whatever earlier tests left behind is not this test's business
    events_queue.delivered.clear()
    yield events_queue
    # Leave no event RECEIVED behind: other suites (reconciliation) look for overdue ones.
    events_queue.drain()


@pytest.fixture
def api_url(client) -> Iterator[str]:
    """The app served over real HTTP on a free port (the local stack's threaded server), for tools that speak
    HTTP: the CLI's `simulate` commands."""
    import threading

    import app
    from rewardgate_ops.local_api import make_server
    from rewardgate_ops.services import free_port

    server = make_server(app.app, "127.0.0.1", free_port())
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server.server_address[1]}"
    server.server.shutdown()
    server.server.server_close()
