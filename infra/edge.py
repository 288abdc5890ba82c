"""The API's edge in the deploy template: who may call what, how much, and what a refusal looks like.

- **The callback function** (`callback_handler`): the platform callback routes' integration points at
  it instead of the API function; same deployment package, handler
  `chalicelib.routes.callback_function.app`, its own role (infra/functions.py: events table, events
  queue, tp-app secrets; no rewards table).
- **API resource policy** (`x-amazon-apigateway-policy`): the public routes (callbacks, JWKS, OpenAPI
  document) may be invoked by anyone; every other route only by IAM principals of this account (and
  then only as their identity policy allows: the managed policies of infra/iam.py).
- **Gateway responses** as RFC 9457 problems (`application/problem+json`): API Gateway's own refusals
  (missing or bad signature, access denied, unknown route, throttling, WAF, body too large) have the
  shape of the app's.
- **Stage throttling** (`MethodSettings`): a default for every method, and a tighter one of its own for each
  public route (`PUBLIC_ROUTE_THROTTLES`), all of them together at most half of the account's regional API
  Gateway quota (which every API of the account shares): a flood on an unauthenticated surface is refused
  at its own limit and cannot take the quota the `/v1` callers need. **X-Ray** (`TracingEnabled`,
  functions `Tracing: Active`) with a low sampling rule (`SAMPLING_RATE`).
- **WAF**: a regional web ACL on the REST stage. Rate rules per client address on `/callbacks/` (a
  platform's pushes come from few addresses at a bounded rate) and on `/v2/app/` (per address, and per
  `x-bili-accesskeyid`: one developer's key cannot use more than its share from many addresses), and a
  body-size rule on `/v2/app/`. Paths are matched after URL-decoding and lower-casing (`/Callbacks/`,
  `/%63allbacks/` are the same path to the rules). WAF cannot be associated with a WebSocket API: that
  API is bounded by its per-route throttles (`websocket_route_settings`), the functions' reserved
  concurrency and the per-game limits of `$connect` and `$default` (chalicelib/routes/live.py).
"""

from __future__ import annotations

import json
from typing import Any

from infra.lambdas import CALLBACK_HANDLER, CALLBACK_HANDLER_LOGICAL_ID, LambdaFunction, Route, chalice_config

CALLBACK_HANDLER_ID = CALLBACK_HANDLER_LOGICAL_ID
CALLBACK_HANDLER_STRING = "chalicelib.routes.callback_function.app"
PROBLEM_JSON = "application/problem+json"

# Stage-wide throttling (requests/s, burst); raise with the account's API Gateway quota (docs/explanation/capacity.md).
THROTTLE_RATE = 10_000
THROTTLE_BURST = 5_000
# Callback requests per 5 minutes from one IP address before the WAF blocks it (a platform pushes a ticket
# every 10 minutes and events as they happen; 3 000 / 5 min = 10/s per address).
CALLBACK_RATE_PER_5_MIN = 3_000
# Open-live calls per 5 minutes from one address, and under one access key id (6 000 / 5 min = 20/s: a
# heartbeat every 20 s for 400 games, or batchHeartbeat for far more; the security centre's per-app limits
# and bans apply below these).
OPEN_LIVE_RATE_PER_5_MIN_PER_IP = 6_000
OPEN_LIVE_RATE_PER_5_MIN_PER_KEY = 6_000
# The largest open-live body the WAF lets through (batchHeartbeat's 200 game ids are about 8 KB), and how far
# it inspects a body (API Gateway's default is 8 KB).
OPEN_LIVE_MAX_BODY_BYTES = 16 * 1024
BODY_INSPECTION_LIMIT = "KB_16"
# Each public route's own throttle (requests/s, burst): together at most half of the account's regional
# quota (10 000 requests/s before an increase), so the /v1 callers keep the rest whatever floods the others.
PUBLIC_ROUTE_THROTTLES = {"callbacks": (500, 1_000), "open-live": (400, 800), "documents": (100, 200)}
# The WebSocket API's per-route throttles (requests/s, burst): $connect (a handler with 3 reads and a
# transaction) tighter than the frames of $default.
WEBSOCKET_ROUTE_THROTTLES = {"$connect": (200, 400), "$default": (1_000, 2_000), "$disconnect": (500, 1_000)}
# X-Ray: the first request each second, then 1 % of the rest (traces cost per request at 1.8 M/s).
SAMPLING_RATE = 0.01
SAMPLING_RESERVOIR = 1

# (response type, status, code, title): API Gateway's refusals before any function runs.
GATEWAY_PROBLEMS = (
    ("MISSING_AUTHENTICATION_TOKEN", 403, "access_denied",
     "No route answers this path, or the request carries no SigV4 signature"),
    ("INVALID_SIGNATURE", 403, "access_denied", "The SigV4 signature does not match"),
    ("EXPIRED_TOKEN", 403, "access_denied", "The caller's credentials have expired"),
    ("ACCESS_DENIED", 403, "access_denied", "The caller's IAM policy or the API's resource policy refuses this route"),
    ("WAF_FILTERED", 403, "throttled", "Too many requests from this address (rate rule)"),
    ("THROTTLED", 429, "throttled", "The stage's request rate limit is reached; retry with backoff"),
    ("REQUEST_TOO_LARGE", 413, "payload_too_large", "The request body exceeds API Gateway's limit"),
    ("UNSUPPORTED_MEDIA_TYPE", 415, "unsupported_media_type", "The request's Content-Type is not accepted"),
    ("INTEGRATION_TIMEOUT", 504, "timeout", "The request took longer than API Gateway's 29 seconds"),
)
# The catch-alls: their status varies, so the body names the response type instead of a status.
DEFAULT_PROBLEMS = (("DEFAULT_4XX", "gateway_refused", "API Gateway refused the request"),
                    ("DEFAULT_5XX", "gateway_error", "API Gateway failed to process the request"))


def _problem_template(code: str, title: str, status: int | None) -> str:
    body: dict[str, Any] = {"type": f"urn:rewardgate:problem:{code}", "title": title}
    if status is not None:
        body["status"] = status
    body["code"] = code
    # $context.error.messageString is API Gateway's own message, already a quoted JSON string
    text = json.dumps(body, separators=(",", ":"))[:-1]
    return text + ',"detail":$context.error.messageString,"gateway_response":"$context.error.responseType",' \
                  '"request_id":"$context.requestId"}'


def gateway_responses() -> dict[str, Any]:
    """`x-amazon-apigateway-gateway-responses`: every refusal API Gateway makes, as problem+json."""
    headers = {"gatewayresponse.header.Content-Type": f"'{PROBLEM_JSON}'"}
    out: dict[str, Any] = {}
    for kind, status, code, title in GATEWAY_PROBLEMS:
        out[kind] = {"statusCode": str(status), "responseParameters": headers,
                     "responseTemplates": {"application/json": _problem_template(code, title, status)}}
    for kind, code, title in DEFAULT_PROBLEMS:
        out[kind] = {"responseParameters": headers,
                     "responseTemplates": {"application/json": _problem_template(code, title, None)}}
    return out


def _execute_arn(path: str, method: str = "*") -> str:
    # In an API's own resource policy, `execute-api:/{stage}/{METHOD}/{path}` stands for this API.
    stub = "/".join("*" if part.startswith("{") else part for part in path.split("/"))
    return "execute-api:/*/" + method.upper() + stub


def resource_policy(routes: list[Route]) -> dict[str, Any]:
    """The API's resource policy: public routes for anyone, the rest for this account's principals only."""
    public = [_execute_arn(r.path, r.method) for r in routes if r.public]
    private = [_execute_arn(r.path, r.method) for r in routes if not r.public]
    statements = []
    if public:
        statements.append({"Sid": "PublicRoutes", "Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke",
                           "Resource": public})
    if private:
        statements += [
            {"Sid": "AccountPrincipals", "Effect": "Allow",
             "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
             "Action": "execute-api:Invoke", "Resource": private},
            {"Sid": "NoOtherAccount", "Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke",
             "Resource": private,
             "Condition": {"StringNotEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}},
        ]
    return {"Version": "2012-10-17", "Statement": statements}


def _callback_integration() -> dict[str, Any]:
    uri = ("arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${"
           + CALLBACK_HANDLER_ID + ".Arn}/invocations")
    return {"x-amazon-apigateway-integration": {"uri": {"Fn::Sub": uri}}}


def _route_throttle(route: Route) -> tuple[int, int]:
    if route.callback:
        return PUBLIC_ROUTE_THROTTLES["callbacks"]
    if route.path.startswith("/v2/app/"):
        return PUBLIC_ROUTE_THROTTLES["open-live"]
    return PUBLIC_ROUTE_THROTTLES["documents"]


def method_settings(routes: list[Route]) -> list[dict[str, Any]]:
    """The stage's default method throttle, and each public route's own (`/a/b` is written `/~1a~1b`)."""
    settings = [{"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": THROTTLE_RATE,
                 "ThrottlingBurstLimit": THROTTLE_BURST, "MetricsEnabled": True}]
    for route in (r for r in routes if r.public):
        rate, burst = _route_throttle(route)
        settings.append({"ResourcePath": "/" + route.path[1:].replace("/", "~1"), "HttpMethod": route.method.upper(),
                         "ThrottlingRateLimit": rate, "ThrottlingBurstLimit": burst, "MetricsEnabled": True})
    return settings


def websocket_route_settings() -> dict[str, Any]:
    """The WebSocket stage's `RouteSettings`: a throttle per route."""
    return {route: {"ThrottlingRateLimit": rate, "ThrottlingBurstLimit": burst}
            for route, (rate, burst) in WEBSOCKET_ROUTE_THROTTLES.items()}


def api_properties(routes: list[Route]) -> dict[str, Any]:
    """What the edge adds to the RestAPI's properties (deep-merged with Chalice's)."""
    paths: dict[str, Any] = {}
    for route in routes:
        if route.callback:
            paths.setdefault(route.path, {})[route.method] = _callback_integration()
    return {
        "TracingEnabled": True,
        "MethodSettings": method_settings(routes),
        "DefinitionBody": {
            "x-amazon-apigateway-policy": resource_policy(routes),
            "x-amazon-apigateway-gateway-responses": gateway_responses(),
            "paths": paths,
        },
    }


def callback_function(fn: LambdaFunction, stage: str, runtime: str) -> dict[str, Any]:
    """The callback function: Chalice does not emit it (one app, one API function), so it is defined here."""
    config = chalice_config(stage, CALLBACK_HANDLER)
    return {
        "Type": "AWS::Serverless::Function",
        "DependsOn": [fn.log_group_id],
        "Metadata": {"checkov": {"skip": [
            {"id": "CKV_AWS_117", "comment": "No VPC: it reaches only DynamoDB, SQS and Secrets Manager over their "
                                             "IAM-authenticated public endpoints."},
            {"id": "CKV_AWS_173", "comment": "The environment holds no secrets; they are read from Secrets Manager."},
            {"id": "CKV_AWS_116", "comment": "Invoked synchronously by API Gateway; a DLQ applies only to "
                                             "asynchronous invocations (the platform retries what fails)."},
            {"id": "CKV_AWS_115", "comment": "Platform pushes are low-volume and bounded by the WAF rate rule; a "
                                             "reservation would only hold idle capacity."},
        ]}},
        "Properties": {
            "FunctionName": fn.physical_name(stage),
            "Handler": CALLBACK_HANDLER_STRING,
            "CodeUri": "./deployment.zip",
            "Runtime": runtime,
            "MemorySize": fn.memory_mb,
            "Timeout": fn.timeout_s,
            "Architectures": [fn.architecture],
            "Tracing": "Active",
            "Role": {"Fn::GetAtt": [fn.role_id, "Arn"]},
            "Environment": {"Variables": dict(config.environment_variables)},
            "Tags": {"rewardgate": f"stage={stage}:function={CALLBACK_HANDLER}"},
        },
    }


def callback_permission() -> dict[str, Any]:
    """API Gateway may invoke the callback function (from this API only)."""
    return {"Type": "AWS::Lambda::Permission", "Properties": {
        "FunctionName": {"Ref": CALLBACK_HANDLER_ID}, "Action": "lambda:InvokeFunction",
        "Principal": "apigateway.amazonaws.com",
        "SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${RestAPI}/*"}}}


_VISIBILITY = {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True}


def _path_contains(fragment: str) -> dict[str, Any]:
    """A match on the URI path after URL-decoding and lower-casing (how an attacker's spellings are undone)."""
    return {"ByteMatchStatement": {
        "FieldToMatch": {"UriPath": {}}, "PositionalConstraint": "CONTAINS", "SearchString": fragment,
        "TextTransformations": [{"Priority": 0, "Type": "URL_DECODE"}, {"Priority": 1, "Type": "LOWERCASE"}]}}


def _rule(stage: str, name: str, priority: int, statement: dict[str, Any]) -> dict[str, Any]:
    return {"Name": name, "Priority": priority, "Action": {"Block": {}}, "Statement": statement,
            "VisibilityConfig": {**_VISIBILITY, "MetricName": f"rewardgate-{stage}-{name}"}}


def waf_rules(stage: str) -> list[dict[str, Any]]:
    """The web ACL's rules: rates per address (callbacks, open-live) and per access key id, open-live body size."""
    open_live = _path_contains("/v2/app/")
    key = [{"Header": {"Name": "x-bili-accesskeyid", "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}]
    return [
        _rule(stage, "callback-rate", 0, {"RateBasedStatement": {
            "Limit": CALLBACK_RATE_PER_5_MIN, "AggregateKeyType": "IP",
            "ScopeDownStatement": _path_contains("/callbacks/")}}),
        _rule(stage, "open-live-rate-ip", 1, {"RateBasedStatement": {
            "Limit": OPEN_LIVE_RATE_PER_5_MIN_PER_IP, "AggregateKeyType": "IP", "ScopeDownStatement": open_live}}),
        _rule(stage, "open-live-rate-key", 2, {"RateBasedStatement": {
            "Limit": OPEN_LIVE_RATE_PER_5_MIN_PER_KEY, "AggregateKeyType": "CUSTOM_KEYS", "CustomKeys": key,
            "ScopeDownStatement": open_live}}),
        _rule(stage, "open-live-body-size", 3, {"AndStatement": {"Statements": [open_live, {
            "SizeConstraintStatement": {"FieldToMatch": {"Body": {"OversizeHandling": "MATCH"}},
                                        "ComparisonOperator": "GT", "Size": OPEN_LIVE_MAX_BODY_BYTES,
                                        "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}]}}),
    ]


def waf_resources(stage: str) -> dict[str, Any]:
    """A regional web ACL with the rate and size rules, associated with the API's stage."""
    return {
        "ApiWebAcl": {
            "Type": "AWS::WAFv2::WebACL",
            "Metadata": {"checkov": {"skip": [
                {"id": "CKV_AWS_192", "comment": "The API runs no Java (Log4j); its inputs are validated JSON."},
                {"id": "CKV2_AWS_31", "comment": "WAF logging needs a Firehose or a log group named aws-waf-logs-*; "
                                                 "the rule's CloudWatch metrics and sampled requests show what "
                                                 "it blocks."},
            ]}},
            "Properties": {
                "Name": f"rewardgate-{stage}-api",
                "Scope": "REGIONAL",
                "DefaultAction": {"Allow": {}},
                "VisibilityConfig": {**_VISIBILITY, "MetricName": f"rewardgate-{stage}-api"},
                "AssociationConfig": {"RequestBody": {"API_GATEWAY": {
                    "DefaultSizeInspectionLimit": BODY_INSPECTION_LIMIT}}},
                "Rules": waf_rules(stage),
            },
        },
        "ApiWebAclAssociation": {
            "Type": "AWS::WAFv2::WebACLAssociation",
            "Properties": {
                "ResourceArn": {"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${RestAPI}"
                                           "/stages/${RestAPI.Stage}"},
                "WebACLArn": {"Fn::GetAtt": ["ApiWebAcl", "Arn"]},
            },
        },
    }


def sampling_rule(stage: str) -> dict[str, Any]:
    """X-Ray's sampling of the stage's functions: one request a second, then SAMPLING_RATE."""
    return {"XRaySamplingRule": {"Type": "AWS::XRay::SamplingRule", "Properties": {"SamplingRule": {
        "RuleName": f"rewardgate-{stage}"[:32], "Priority": 100, "FixedRate": SAMPLING_RATE,
        "ReservoirSize": SAMPLING_RESERVOIR, "ServiceName": f"rewardgate-{stage}-*", "ServiceType": "*",
        "Host": "*", "HTTPMethod": "*", "URLPath": "*", "ResourceARN": "*", "Version": 1}}}}
