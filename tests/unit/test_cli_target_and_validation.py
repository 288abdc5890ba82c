"""Where CLI commands act (local stack / environment / AWS), and the input checks of `tp-app add`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from rewardgate_ops.cli import rewardgate
from rewardgate_ops.services import endpoint_environment
from rewardgate_ops.target import ServiceRecord, StackInfo, Target, TargetError, resolve_target

STATE = Path("/nonexistent/state")
STACK = StackInfo(
    pid=1, stage="local", started_at="2026-01-01T00:00:00+00:00",
    api=ServiceRecord(port=18000, pgid=11, url="http://127.0.0.1:18000"),
    dynamodb=ServiceRecord(port=18001, pgid=12, url="http://127.0.0.1:18001"),
    moto=ServiceRecord(port=18002, pgid=13, url="http://127.0.0.1:18002"),
    data_dir="/tmp/data", logs_dir="/tmp/logs",
)
ENDPOINT_ENV = {"AWS_ENDPOINT_URL_SQS": "http://elsewhere:4566", "AWS_ENDPOINT_URL": "http://elsewhere:4566"}


# --- target resolution -----------------------------------------------------------------------------

def test_resolve_target__local_flag_and_stack_up__local_stack_endpoints_override_environment():
    # GIVEN a running local stack and stale endpoint variables and a profile in the environment
    env = {**ENDPOINT_ENV, "AWS_PROFILE": "prod-admin"}
    # WHEN --local is chosen
    target = resolve_target("local", None, env, STATE, STACK)
    # THEN the stack's endpoints and local credentials are set, and the foreign variables dropped
    assert target.kind == "local"
    expected = endpoint_environment("http://127.0.0.1:18001", "http://127.0.0.1:18002")
    assert {k: target.set_env.get(k) for k in expected} == expected
    assert target.set_env["AWS_ENDPOINT_URL_SQS"] == "http://127.0.0.1:18002"
    assert target.set_env["AWS_ACCESS_KEY_ID"] == "local"
    assert target.set_env["RG_STAGE"] == "local"
    assert {"AWS_ENDPOINT_URL", "AWS_PROFILE"} <= set(target.unset_env)
    assert target.api_url == "http://127.0.0.1:18000"


def test_resolve_target__local_flag_and_no_stack__error_says_how_to_start_it():
    with pytest.raises(TargetError, match="make run"):
        resolve_target("local", None, {}, STATE, None)


def test_resolve_target__local_flag_with_other_stage__error():
    with pytest.raises(TargetError, match="serves stage 'local'"):
        resolve_target("local", "prod", {}, STATE, STACK)


def test_resolve_target__aws_flag_without_stage__error_asks_for_stage():
    with pytest.raises(TargetError, match="--stage"):
        resolve_target("aws", None, {}, STATE, STACK)


def test_resolve_target__aws_flag_with_stage__endpoint_variables_dropped():
    # GIVEN endpoint variables left in the shell by a local session
    # WHEN AWS is chosen explicitly
    target = resolve_target("aws", "prod", ENDPOINT_ENV, STATE, STACK)
    # THEN they are dropped (real AWS), the stage is set, and no payout provider named (the CLI moves no money)
    assert target.kind == "aws"
    assert target.set_env == {"RG_STAGE": "prod", "RG_PAYOUT_PROVIDER": "none"}
    assert set(target.unset_env) == set(ENDPOINT_ENV)
    assert target.api_url is None  # a stack output: commands that post ask for --url


def test_resolve_target__no_flag_and_endpoint_variables__environment_wins_over_running_stack():
    target = resolve_target(None, None, ENDPOINT_ENV, STATE, STACK)
    assert target.kind == "env"
    assert target.stage == "local"
    assert target.unset_env == ()


def test_resolve_target__no_flag_variables_equal_to_running_stack__local_stack():
    # GIVEN a shell where `eval "$(rewardgate local env)"` was run
    env = {k: v for k, v in STACK.environment().items() if k.startswith("AWS_ENDPOINT_URL")}
    # WHEN resolved THEN it is the local stack (so tp apps added there are remembered across restarts)
    assert resolve_target(None, None, env, STATE, STACK).kind == "local"


def test_resolve_target__no_flag_no_variables_stack_up__local_stack():
    assert resolve_target(None, None, {}, STATE, STACK).kind == "local"


def test_resolve_target__no_flag_no_variables_no_stack__error_never_falls_through_to_aws():
    # GIVEN nothing points anywhere / WHEN resolved / THEN an error names both ways out
    with pytest.raises(TargetError) as caught:
        resolve_target(None, None, {}, STATE, None)
    assert "make run" in str(caught.value) and "--aws --stage" in str(caught.value)


def test_resolve_target__no_flag_stack_up_but_prod_stage__error_suggests_aws():
    with pytest.raises(TargetError, match="--aws --stage prod"):
        resolve_target(None, "prod", {}, STATE, STACK)


def test_target_apply__environment__unsets_then_sets():
    environ = {"AWS_ENDPOINT_URL_SQS": "http://stale", "AWS_PROFILE": "x", "KEEP": "1"}
    Target("local", "local", "d", {"AWS_ENDPOINT_URL_SQS": "http://new"}, ("AWS_ENDPOINT_URL_SQS", "AWS_PROFILE")
           ).apply(environ)
    assert environ == {"AWS_ENDPOINT_URL_SQS": "http://new", "KEEP": "1"}


# --- tp-app add input checks -------------------------------------------------------------------------

GOOD_KEY = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"  # 43 base64 characters
OTHER_KEY = "QPONMLKJIHGFEDCBAzyxwvutsrqponmlkjihgfedcba"


SECRET_OPTIONS = ("--token", "--aes-key", "--previous-aes-key")


def add(tmp_path, **overrides):
    """tp-app add with each secret (--token, --aes-key, --previous-aes-key) written to its own file."""
    options = {"--tp-app-id": "tt1234", "--token": "tok3n", "--aes-key": GOOD_KEY, "--platform": "douyin",
               **overrides}
    args = ["--state-dir", str(tmp_path), "tp-app", "add"]
    for name, value in options.items():
        if value is None:
            continue
        if name in SECRET_OPTIONS:
            path = tmp_path / name.strip("-")
            path.write_text(value + "\n", encoding="utf-8")
            args += [f"{name}-file", str(path)]
        else:
            args += [name, value]
    return CliRunner().invoke(rewardgate, args)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"--aes-key": GOOD_KEY[:42]}, "exactly 43 characters, got 42"),
    ({"--aes-key": GOOD_KEY + "A"}, "exactly 43 characters, got 44"),
    ({"--aes-key": GOOD_KEY[:42] + "-"}, "only base64 characters"),
    ({"--previous-aes-key": GOOD_KEY[:40]}, "exactly 43 characters, got 40"),
    ({"--previous-aes-key": GOOD_KEY}, "must differ from the AES key"),
    ({"--token": "has space"}, "printable ASCII without spaces"),
    ({"--token": "令牌"}, "printable ASCII without spaces"),
    ({"--token": ""}, "holds no token"),
    ({"--token": "x" * 129}, "at most 128 characters"),
    ({"--tp-app-id": "tt_1234"}, "letters, digits, '.' or '-'"),
    ({"--tp-app-id": "-tt"}, "letters, digits, '.' or '-'"),
    ({"--platform": "weibo"}, "'weibo' is not one of 'douyin', 'wechat'"),
    ({"--receiver-id": "has space"}, "printable ASCII"),
    ({"--aes-key": None}, "--aes-key-file PATH"),
])
def test_tp_app_add__invalid_input__usage_error_before_any_target(tmp_path, overrides, message):
    # GIVEN one bad input (and no local stack in this state dir)
    # WHEN tp-app add runs
    result = add(tmp_path, **overrides)
    # THEN it stops with a usage error naming the problem (exit 2), before resolving where to store
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "target:" not in result.output


def test_tp_app_add__aws_without_stage__error_exit_1(tmp_path, monkeypatch):
    monkeypatch.delenv("RG_STAGE", raising=False)
    (tmp_path / "token").write_text("t")
    (tmp_path / "key").write_text(GOOD_KEY)
    result = CliRunner().invoke(rewardgate, ["--aws", "--state-dir", str(tmp_path), "tp-app", "add",
                                             "--tp-app-id", "tt1", "--token-file", str(tmp_path / "token"),
                                             "--aes-key-file", str(tmp_path / "key"), "--platform", "douyin"])
    assert result.exit_code == 1
    assert "--aws needs the stage" in result.output


def test_simulate_callback__aws_without_url__usage_error_before_any_aws_call(tmp_path):
    # GIVEN an operator aiming at a deployed stage (its API URL is a stack output, not known from the stage)
    # (the --aws target rewrites this process's environment: endpoints dropped, RG_STAGE and RG_PAYOUT_PROVIDER set;
    # all of it is put back, or every later test in the process would refuse withdrawals as payout_unavailable)
    saved = dict(os.environ)
    try:
        # WHEN they simulate a callback without --url
        result = CliRunner().invoke(rewardgate, ["--aws", "--stage", "prod", "--state-dir", str(tmp_path),
                                                 "simulate", "callback", "--tp-app-id", "tt1", "--event", "PUSH"])
    finally:
        os.environ.clear()
        os.environ.update(saved)
        from chalicelib import process_state

        process_state.reset()
    # THEN it stops with a usage error asking for --url (rather than posting to the local stack's address)
    assert result.exit_code == 2, result.output
    assert "--url is required for AWS stage 'prod'" in result.output


def test_simulate_callback__app_id_with_file_event__usage_error(tmp_path):
    event = tmp_path / "event.json"
    event.write_text('{"Event": "AUTHORIZED", "AppId": "tt1"}')
    result = CliRunner().invoke(rewardgate, ["--state-dir", str(tmp_path), "simulate", "callback",
                                             "--tp-app-id", "tt1", "--event", str(event), "--app-id", "tt2"])
    assert result.exit_code == 2
    assert "--app-id applies to sample events" in result.output


def test_simulate_callback__unknown_event_name__lists_known_ones(tmp_path):
    result = CliRunner().invoke(rewardgate, ["--state-dir", str(tmp_path), "simulate", "callback",
                                             "--tp-app-id", "tt1", "--event", "NO_SUCH_EVENT"])
    assert result.exit_code == 2
    assert "neither a file nor a sample event name" in result.output
    assert "AUTHORIZED" in result.output
