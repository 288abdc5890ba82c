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
- **Stage throttling** (`MethodSettings`) and **X-Ray** (`TracingEnabled`, functions `Tracing: Active`)
  with a low sampling rule (`SAMPLING_RATE`).
- **WAF**: a regional web ACL on the stage with a per-IP rate rule scoped to `/callbacks/` (a
  platform's pushes come from few addresses at a bounded rate; a flood of forged callbacks is cut
  before it costs a Lambda invocation or a Secrets Manager read).
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


def api_properties(routes: list[Route]) -> dict[str, Any]:
    """What the edge adds to the RestAPI's properties (deep-merged with Chalice's)."""
    paths: dict[str, Any] = {}
    for route in routes:
        if route.callback:
            paths.setdefault(route.path, {})[route.method] = _callback_integration()
    return {
        "TracingEnabled": True,
        "MethodSettings": [{"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": THROTTLE_RATE,
                            "ThrottlingBurstLimit": THROTTLE_BURST, "MetricsEnabled": True}],
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


def waf_resources(stage: str) -> dict[str, Any]:
    """A regional web ACL with the callback rate rule, associated with the API's stage."""
    visibility = {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True}
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
                "VisibilityConfig": {**visibility, "MetricName": f"rewardgate-{stage}-api"},
                "Rules": [{
                    "Name": "callback-rate",
                    "Priority": 0,
                    "Action": {"Block": {}},
                    "VisibilityConfig": {**visibility, "MetricName": f"rewardgate-{stage}-callback-rate"},
                    "Statement": {"RateBasedStatement": {
                        "Limit": CALLBACK_RATE_PER_5_MIN, "AggregateKeyType": "IP",
                        "ScopeDownStatement": {"ByteMatchStatement": {
                            "FieldToMatch": {"UriPath": {}}, "PositionalConstraint": "CONTAINS",
                            "SearchString": "/callbacks/",
                            "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}},
                    }},
                }],
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
