"""Call timeouts, the configuration half of the deadlines: the transaction connection ran on PynamoDB's defaults
(connect 15 s, read 30 s, 6 attempts: one hung call could take minutes), the table models and the SQS / Secrets
Manager clients on 5-6 attempts of up to 15 s. One call to a backing service, every botocore attempt and backoff
included, must fit well inside API Gateway's 29 s, so a request can still answer its own 503.

The configurations are built here for the deployed settings (the test suite itself waits longer on its local
emulators, see tests/conftest.py); building a botocore client does no I/O."""

from __future__ import annotations

import pytest

from chalicelib import clients, dynamo
from chalicelib.settings import load_settings

API_GATEWAY_LIMIT_S = 29


def worst_call_s(config) -> float:
    """Longest one botocore call can take: every attempt timing out, with standard mode's longest backoffs."""
    retries = config.retries or {}
    attempts = retries.get("total_max_attempts") or (retries.get("max_attempts", 4) + 1)
    backoff = sum(min(20, 2 ** (i - 1)) for i in range(1, attempts))
    return attempts * (config.connect_timeout + config.read_timeout) + backoff


DEPLOYED = load_settings({"RG_STAGE": "prod", "RG_PAYOUT_PROVIDER": "none"})


def _configs():
    return [("dynamodb (table models and transactions)", lambda: dynamo.new_connection(DEPLOYED).client.meta.config),
            ("sqs and secretsmanager", lambda: clients.config(DEPLOYED))]


@pytest.mark.parametrize("name,config_of", _configs(), ids=[name for name, _ in _configs()])
def test_backing_service_client__every_attempt_timing_out__one_call_fits_in_half_the_request_limit(name, config_of):
    config = config_of()
    # THEN botocore retries in standard mode (no adaptive client-side rate limiting that sleeps unbounded)
    assert (config.retries or {}).get("mode") == "standard", name
    # AND one call with all its attempts leaves at least half of API Gateway's limit for the answer and a retry
    assert worst_call_s(config) <= API_GATEWAY_LIMIT_S / 2, (name, config.connect_timeout, config.read_timeout,
                                                             config.retries)


@pytest.mark.parametrize("model", dynamo.all_models(), ids=lambda m: m.Meta.logical_name)
def test_table_model__connection_settings__the_same_as_the_transaction_connection(model):
    options = dynamo.connection_options()
    assert {name: getattr(model.Meta, name) for name in options} == options
