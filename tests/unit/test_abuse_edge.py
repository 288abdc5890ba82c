"""Issue 24 item 8 and the reserved concurrency of item 3: the edge of the deploy template.

WAF rules are checked by evaluating their statements against requests with an independent matcher of AWS WAF's
documented semantics (URL_DECODE then LOWERCASE, then the positional constraint), not by re-reading the code.
"""

from __future__ import annotations

import functools
import urllib.parse

from infra import edge, lambdas
from infra.template import merge_template

STAGE = "prod"
# The account's API Gateway request quota per region (all APIs share it), before any increase.
ACCOUNT_RATE = 10_000


@functools.cache
def merged() -> dict:
    return merge_template(STAGE)


def rules() -> dict[str, dict]:
    return {r["Name"]: r for r in merged()["Resources"]["ApiWebAcl"]["Properties"]["Rules"]}


def transformed(value: str, transformations: list[dict]) -> str:
    for step in sorted(transformations, key=lambda t: t["Priority"]):
        if step["Type"] == "URL_DECODE":
            value = urllib.parse.unquote(value)
        elif step["Type"] == "LOWERCASE":
            value = value.lower()
        elif step["Type"] != "NONE":
            raise AssertionError(f"the test's matcher does not know {step['Type']}")
    return value


def scope_matches(statement: dict, path: str) -> bool:
    """Whether a rate rule's scope-down statement (a byte match on the URI path) selects this raw path."""
    match = statement["ByteMatchStatement"]
    assert "UriPath" in match["FieldToMatch"]
    value = transformed(path, match["TextTransformations"])
    needle = match["SearchString"]
    return {"CONTAINS": needle in value, "STARTS_WITH": value.startswith(needle)}[match["PositionalConstraint"]]


def rate_rules_covering(path: str) -> list[dict]:
    found = []
    for rule in rules().values():
        rate = rule["Statement"].get("RateBasedStatement")
        if rate and scope_matches(rate["ScopeDownStatement"], path):
            found.append(rule)
    return found


def test_waf__callback_rate__case_insensitive_and_url_decoded():
    # GIVEN spellings of a callback path an attacker may send (API Gateway's routing is case-sensitive, but a
    # rule that misses "/Callbacks/" or "/%63allbacks/" only shows a scanner how to walk around it)
    for path in ("/api/callbacks/tp1/events", "/api/Callbacks/tp1/events", "/api/%63allbacks/tp1/events",
                 "/api/CALLBACKS/tp1/auth"):
        # THEN the callback rate rule covers each
        assert any(r["Name"] == "callback-rate" for r in rate_rules_covering(path)), path


def test_waf__open_live__rate_per_ip_and_per_access_key_id():
    # GIVEN the signed developer API, however its path is spelled
    for path in ("/api/v2/app/start", "/api/V2/App/heartbeat", "/api/v2/app/%65vents"):
        covering = {r["Name"]: r for r in rate_rules_covering(path)}
        # THEN one rule counts per client address and one per access key id (header x-bili-accesskeyid)
        assert covering["open-live-rate-ip"]["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP", path
        keyed = covering["open-live-rate-key"]["Statement"]["RateBasedStatement"]
        assert keyed["AggregateKeyType"] == "CUSTOM_KEYS"
        assert [k["Header"]["Name"] for k in keyed["CustomKeys"]] == ["x-bili-accesskeyid"]
    # AND nothing of /v1 is counted against them
    assert rate_rules_covering("/api/v1/rewards/grants") == []


def test_waf__open_live__oversized_body_blocked_and_inspected_far_enough():
    rule = rules()["open-live-body-size"]
    size = rule["Statement"]["AndStatement"]["Statements"][1]["SizeConstraintStatement"]
    assert rule["Action"] == {"Block": {}}
    assert size["ComparisonOperator"] == "GT" and size["FieldToMatch"]["Body"]["OversizeHandling"] == "MATCH"
    assert size["Size"] == edge.OPEN_LIVE_MAX_BODY_BYTES
    # the body is inspected as far as the limit (API Gateway's default inspection stops at 8 KB)
    inspect = merged()["Resources"]["ApiWebAcl"]["Properties"]["AssociationConfig"]["RequestBody"]["API_GATEWAY"]
    assert int(inspect["DefaultSizeInspectionLimit"].removeprefix("KB_")) * 1024 >= edge.OPEN_LIVE_MAX_BODY_BYTES


def method_settings() -> dict[tuple[str, str], dict]:
    settings = merged()["Resources"]["RestAPI"]["Properties"]["MethodSettings"]
    return {(s["ResourcePath"], s["HttpMethod"]): s for s in settings}


def encoded(path: str) -> str:
    """A MethodSetting's ResourcePath: "/a/b" is written "/~1a~1b"."""
    return "/" + path[1:].replace("/", "~1")


def test_throttles__every_public_route_has_its_own__together_below_the_account_quota():
    # GIVEN the stage's method settings
    settings = method_settings()
    public = [r for r in lambdas.routes() if r.public]
    # THEN each public route has its own throttle, and all of them together leave most of the account's shared
    # quota to the /v1 callers (a flood of unauthenticated /v2 or callback calls cannot take it all)
    total = 0
    for route in public:
        found = settings[(encoded(route.path), route.method.upper())]
        total += found["ThrottlingRateLimit"]
    print(f"public routes={len(public)} their throttles together={total}/s account quota={ACCOUNT_RATE}/s")
    assert total <= ACCOUNT_RATE // 2


def test_websocket__routes__throttled_each_and_functions_reserved():
    stage = merged()["Resources"]["WebsocketAPIStage"]["Properties"]
    routes = stage["RouteSettings"]
    # THEN $connect and $default each have their own throttle, $connect the tighter one
    assert set(routes) == {"$connect", "$default", "$disconnect"}
    assert routes["$connect"]["ThrottlingRateLimit"] < routes["$default"]["ThrottlingRateLimit"]
    # AND every WebSocket function has a reservation, so a storm of connects or frames cannot draw on the
    # concurrency the API needs
    for fn in [f for f in lambdas.functions(STAGE) if f.kind == "websocket"]:
        assert fn.reserved_concurrency and fn.reserved_concurrency >= 2, fn.name


# --- item 6: least read ---------------------------------------------------------------------------------


def invoked_paths(policy_id: str) -> set[str]:
    (statement,) = merged()["Resources"][policy_id]["Properties"]["PolicyDocument"]["Statement"]
    return {r["Fn::Sub"].split("${RestAPI}/api/", 1)[1] for r in statement["Resource"]}


def test_caller_policies__read_only__no_wallet_route__wallet_service_has_them():
    # GIVEN the managed caller policies of the stage
    read_only, wallet = invoked_paths("ReadOnlyApiPolicy"), invoked_paths("WalletServicePolicy")
    # THEN the operators' read policy reaches no user's wallet, flow or withdrawal
    assert [p for p in read_only if "/v1/wallets" in p] == []
    assert "GET/v1/tp-apps/*/events" in read_only and "GET/v1/admin/switches" in read_only
    # AND the wallet service's policy has every wallet route, reads included, and nothing else
    assert wallet == {"GET/v1/wallets/*", "GET/v1/wallets/*/flow", "GET/v1/wallets/*/withdrawals/*",
                      "POST/v1/wallets/*/withdrawals"}


def test_caller_policies__credentials__their_own_policy_only():
    read_only, credentials = invoked_paths("ReadOnlyApiPolicy"), invoked_paths("CallbackCredentialsPolicy")
    assert credentials == {"GET/v1/tp-apps/*/events/*/credentials"}
    assert [p for p in read_only if p.endswith("/credentials")] == []
