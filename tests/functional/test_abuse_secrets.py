"""Issue 24 item 1: a forged access key id costs at most one bounded Secrets Manager read and never wipes
what genuine callers rely on (their app keys, the play master key, tp app credentials).

The count comes from botocore's own event hook on the Secrets Manager client: every GetSecretValue the
process sends is seen, whichever code path sends it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from chalicelib import secrets as secret_store
from chalicelib.play import keys, openlive
from chalicelib.secrets import TpAppCredentials
from tests.conftest import uid
from tests.openlive_client import bili_headers
from tests.play_support import install_play_key, make_app, open_live


@pytest.fixture
def secret_reads() -> Iterator[list[str]]:
    """The SecretId of every GetSecretValue call sent from now on."""
    seen: list[str] = []

    def count(params, **_):
        seen.append(params["SecretId"])

    events = secret_store._secrets().client.meta.events
    events.register("provide-client-params.secrets-manager.GetSecretValue", count)
    yield seen
    events.unregister("provide-client-params.secrets-manager.GetSecretValue", count)


def forged_call(app_id: int, n: int) -> int:
    """A well-formed, correctly hashed and timed call under a key id no one was issued."""
    body = json.dumps({"game_id": "x"}).encode()
    headers = bili_headers(f"rgak-{app_id}-{n:024x}", "guessed-secret", body)
    return openlive.call("heartbeat", {k.lower(): v for k, v in headers.items()}, body).body["code"]


def test_secrets__forged_key_flood__one_read_per_named_app_and_no_genuine_secret_re_read(client, secret_reads):
    # GIVEN three genuine apps and a tp app whose secrets this process has already read (a warm cache)
    install_play_key()
    genuine = [make_app(client) for _ in range(3)]
    plays = [open_live(client, app) for app in genuine]
    tp = TpAppCredentials(tp_app_id=uid("tp"), token="tok", aes_key="a" * 43, platform="douyin")
    secret_store.put_tp_app(tp)
    secret_store.get_tp_app(tp.tp_app_id)
    assert {p.heartbeat("no-such-game")["code"] for p in plays} == {7000}
    secret_reads.clear()
    # WHEN a forger sends 300 calls with fresh key ids naming those apps (app ids are not secret)
    codes = [forged_call(genuine[n % 3].app_id, n) for n in range(300)]
    forged_reads = list(secret_reads)
    secret_reads.clear()
    # AND the genuine callers carry on
    after = [p.heartbeat("no-such-game")["code"] for p in plays]
    secret_store.get_tp_app(tp.tp_app_id)
    print(f"forged calls=300 apps named=3 Secrets Manager reads during the flood={len(forged_reads)} "
          f"reads by genuine traffic afterwards={len(secret_reads)}")
    # THEN every forged call is refused, the flood cost at most one refresh of each named app's own secret,
    assert set(codes) == {4002}
    assert len(forged_reads) <= 3
    assert set(forged_reads) <= {f"rewardgate/local/play-apps/{app.app_id}" for app in genuine}
    # AND genuine traffic is served from the cache as before: no secret of anyone is read again
    assert after == [7000, 7000, 7000]
    assert secret_reads == []


def test_secrets__forget_one_name__other_cached_secrets_stay(client, secret_reads):
    # GIVEN two app keys read once
    install_play_key()
    first, second = make_app(client), make_app(client)
    keys.secret_for(first.key.access_key_id)
    keys.secret_for(second.key.access_key_id)
    secret_reads.clear()
    # WHEN one of them is forgotten (a rotation seen by this process)
    secret_store.forget(f"rewardgate/local/play-apps/{first.app_id}")
    keys.secret_for(first.key.access_key_id)
    keys.secret_for(second.key.access_key_id)
    # THEN only that one is read again
    assert secret_reads == [f"rewardgate/local/play-apps/{first.app_id}"]
