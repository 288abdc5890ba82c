"""`RG_PAYOUT_PROVIDER`: the fake provider moves no money, so only the local stage may
use it; every other stage names its provider; an unknown value stops the process at start-up with a message
naming the variable and the allowed values, instead of refusing every withdrawal later."""

from __future__ import annotations

import pytest

from chalicelib.settings import load_settings
from infra import lambdas


@pytest.mark.parametrize("env", [
    {"RG_STAGE": "local"},
    {"RG_STAGE": "local", "RG_PAYOUT_PROVIDER": "fake"},
])
def test_payout_provider__local_stage__fake(env):
    assert load_settings(env).payout_provider == "fake"


@pytest.mark.parametrize("stage", ["local", "prod", "staging"])
def test_payout_provider__none_named__none_on_any_stage(stage):
    assert load_settings({"RG_STAGE": stage, "RG_PAYOUT_PROVIDER": "none"}).payout_provider == "none"


@pytest.mark.parametrize("stage", ["prod", "staging", "dev"])
def test_payout_provider__unset_outside_local__fails_naming_the_variable(stage):
    with pytest.raises(ValueError) as raised:
        load_settings({"RG_STAGE": stage})
    assert str(raised.value) == (f"environment variable RG_PAYOUT_PROVIDER must be set on stage {stage!r} "
                                 "(one of: fake, none; fake only on the local stage)")


@pytest.mark.parametrize("stage", ["prod", "staging"])
def test_payout_provider__fake_outside_local__fails(stage):
    with pytest.raises(ValueError) as raised:
        load_settings({"RG_STAGE": stage, "RG_PAYOUT_PROVIDER": "fake"})
    assert str(raised.value) == ("environment variable RG_PAYOUT_PROVIDER=fake is allowed only on the local "
                                 f"stage, not on {stage!r} (it marks withdrawals paid with no money moving)")


@pytest.mark.parametrize(("stage", "value"), [("local", "fkae"), ("prod", "nnoe"), ("prod", "Fake"), ("local", " ")])
def test_payout_provider__unknown_value__fails_at_load_naming_the_allowed_values(stage, value):
    with pytest.raises(ValueError) as raised:
        load_settings({"RG_STAGE": stage, "RG_PAYOUT_PROVIDER": value})
    assert str(raised.value) == f"environment variable RG_PAYOUT_PROVIDER must be one of: fake, none; got {value!r}"


def test_chalice_config__every_stage_and_function__loads_its_payout_provider():
    # GIVEN .chalice/config.json THEN every deployed function's settings load, and only local uses the fake
    for stage in lambdas.config_on_disk()["stages"]:
        for name in lambdas.config_on_disk()["lambda_functions"]:
            provider = lambdas.deployed_settings(stage, name).payout_provider
            assert provider == ("fake" if stage == "local" else "none"), (stage, name)


def test_package__stage_whose_payout_provider_is_wrong__refused_before_packaging(monkeypatch, capsys):
    # GIVEN a .chalice/config.json whose prod stage asks for the fake provider
    from infra import package

    config = lambdas.config_on_disk()
    config["stages"]["prod"]["environment_variables"]["RG_PAYOUT_PROVIDER"] = "fake"
    monkeypatch.setattr(lambdas, "config_on_disk", lambda: config)
    # WHEN it is packaged THEN it stops before building, naming the stage, a function and the variable
    with pytest.raises(SystemExit) as stopped:
        package.main(["merge-template", "--stage", "prod", "--out", "/nonexistent/never-written.json"])
    assert stopped.value.code == 2
    assert "stage 'prod', function api_handler: environment variable RG_PAYOUT_PROVIDER=fake is allowed only on " \
           "the local stage" in capsys.readouterr().err


def test_settings__payout_unresolved_alarm_horizon__default_15_minutes_and_bad_values_refused():
    assert load_settings({}).payout_unresolved_alarm_s == 900
    assert load_settings({"RG_PAYOUT_UNRESOLVED_ALARM_S": "21600"}).payout_unresolved_alarm_s == 21_600
    for raw, message in (("6h", "must be an integer, got '6h'"), ("10", "must be at least 60, got 10")):
        with pytest.raises(ValueError, match=f"RG_PAYOUT_UNRESOLVED_ALARM_S {message}"):
            load_settings({"RG_PAYOUT_UNRESOLVED_ALARM_S": raw})
