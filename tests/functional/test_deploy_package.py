"""`make package`'s output: the SAM template Chalice wrote with infra's merge, and its SAM expansion."""

from __future__ import annotations

import struct
import zipfile

import pytest
from cfnlint.api import ManualArgs
from cfnlint.api import lint as cfn_lint

from infra import lambdas
from infra.package import check_template
from tests.deploy_support import STAGE, linted_by_make, packaged

# `chalice package` runs here unless `make iac-check` left a current build (make test): not in make check.
pytestmark = [pytest.mark.slow, pytest.mark.own_stack]


def test_packaged__every_sqs_event_source_mapping__reports_batch_item_failures():
    # GIVEN the packaged template and the plain CloudFormation SAM expands it into
    pkg = packaged()
    sqs_functions = [fn for fn in lambdas.functions(STAGE) if fn.kind == "sqs"]
    events = [event for fn in pkg.of_type("AWS::Serverless::Function").values()
              for event in fn["Properties"].get("Events", {}).values() if event["Type"] == "SQS"]
    mappings = pkg.of_type("AWS::Lambda::EventSourceMapping", expanded=True)
    # THEN every SQS event, and every event source mapping CloudFormation will create, has it
    print(f"sqs_functions={len(sqs_functions)} sam_events={len(events)} event_source_mappings={len(mappings)}")
    assert len(events) == len(mappings) == len(sqs_functions) >= 2
    assert [e["Properties"]["FunctionResponseTypes"] for e in events] == [["ReportBatchItemFailures"]] * len(events)
    assert [m["Properties"]["FunctionResponseTypes"] for m in mappings.values()] == (
        [["ReportBatchItemFailures"]] * len(mappings))


def test_packaged__event_sources__drain_this_stacks_queues():
    # GIVEN the expanded event source mappings and the stack's queues
    pkg = packaged()
    queue_names = {q["Properties"]["QueueName"] for q in pkg.of_type("AWS::SQS::Queue").values()}
    for mapping in pkg.of_type("AWS::Lambda::EventSourceMapping", expanded=True).values():
        # THEN each polls a queue this stack creates, for this stage
        arn = mapping["Properties"]["EventSourceArn"]["Fn::Sub"]
        assert arn.rsplit(":", 1)[1] in queue_names
        assert ":rewardgate-prod-" in arn


def test_packaged__templates__pass_infra_checks_and_cfn_lint():
    # GIVEN both templates
    pkg = packaged()
    # WHEN checked by infra's rules and by cfn-lint
    problems = check_template(pkg.sam) + check_template(pkg.expanded)
    names = ("sam.json", "transformed.json")
    # The CLI's defaults (errors and warnings). `make iac-check` runs the CLI itself and records the two files'
    # hashes when it passes: those exact bytes are not linted twice.
    already = linted_by_make(pkg.out, names)
    lint = [] if already else [match for name in names for match in
                               cfn_lint((pkg.out / name).read_text(), config=ManualArgs(regions=["us-east-1"]))]
    # THEN nothing is reported
    print(f"resources={len(pkg.sam['Resources'])} expanded={len(pkg.expanded['Resources'])} "
          f"problems={len(problems)} cfn_lint_matches={len(lint)} cfn_lint_by={'make' if already else 'test'}")
    assert problems == []
    assert [str(m) for m in lint] == []


def test_packaged__api__v1_iam_authorized_callbacks_and_open_live_public_after_transform():
    # GIVEN the RestApi CloudFormation will create
    body = packaged().expanded["Resources"]["RestAPI"]["Properties"]["Body"]
    methods = {(path, method): spec for path, ops in body["paths"].items() for method, spec in ops.items()
               if method != "options"}
    # THEN /v1 methods require SigV4; the callbacks, the open-live API (each signed its own way), the JWKS, the
    # OpenAPI document and its reference page (with its script) do not
    v1 = {k: v for k, v in methods.items() if k[0].startswith("/v1/")}
    callbacks = {k: v for k, v in methods.items() if k[0].startswith("/callbacks/")}
    open_live = {k: v for k, v in methods.items() if k[0].startswith("/v2/app/")}
    documents = {k: v for k, v in methods.items()
                 if k[0] in ("/.well-known/jwks.json", "/openapi.json", "/docs", "/docs/redoc.standalone.js")}
    print(f"v1_methods={len(v1)} callback_methods={len(callbacks)} open_live_methods={len(open_live)} "
          f"public_documents={len(documents)}")
    assert len(v1) + len(callbacks) + len(open_live) + len(documents) == len(methods)
    assert all(spec["security"] == [{"sigv4": []}] for spec in v1.values())
    assert all("security" not in spec for spec in [*callbacks.values(), *open_live.values(), *documents.values()])
    assert len(callbacks) == 2 and len(open_live) == 5 and len(documents) == 4
    # AND the callbacks go to the callback function, everything else to the API function
    uris = {k: v["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"] for k, v in methods.items()}
    assert all("${CallbackHandler.Arn}" in uris[k] for k in callbacks)
    assert all("${APIHandler.Arn}" in uris[k] for k in [*v1, *open_live, *documents])
    # AND the resource policy and the problem+json gateway responses made it through the transform
    assert {s["Sid"] for s in body["x-amazon-apigateway-policy"]["Statement"]} == {
        "PublicRoutes", "AccountPrincipals", "NoOtherAccount"}
    assert body["x-amazon-apigateway-gateway-responses"]["THROTTLED"]["statusCode"] == "429"
    assert body["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"


def test_packaged__functions__settings_from_config_and_own_roles():
    # GIVEN the functions CloudFormation will create
    pkg = packaged()
    created = {f["Properties"]["FunctionName"]: f["Properties"]
               for f in pkg.of_type("AWS::Lambda::Function", expanded=True).values()}
    # THEN each has the config's memory/timeout/reservation, arm64, and a role of its own
    assert set(created) == {fn.physical_name(STAGE) for fn in lambdas.functions(STAGE)}
    for fn in lambdas.functions(STAGE):
        props = created[fn.physical_name(STAGE)]
        assert (props["MemorySize"], props["Timeout"]) == (fn.memory_mb, fn.timeout_s)
        assert props["Architectures"] == ["arm64"]
        assert props.get("ReservedConcurrentExecutions") == fn.reserved_concurrency
        assert props["Role"] == {"Fn::GetAtt": [fn.role_id, "Arn"]}
    roles = [props["Role"]["Fn::GetAtt"][0] for props in created.values()]
    assert len(set(roles)) == len(roles)
    assert "DefaultRole" not in pkg.sam["Resources"]


def test_packaged__deployment_zip__carries_the_app_and_arm64_linux_wheels():
    # GIVEN the deployment package next to the template
    with zipfile.ZipFile(packaged().out / "deployment.zip") as zipped:
        names = zipped.namelist()
        rust = next(n for n in names if n.startswith("cryptography/hazmat/bindings/_rust") and n.endswith(".so"))
        elf_header = zipped.read(rust)[:20]
    # THEN the app, its packages and an aarch64 build of cryptography are inside
    assert {"app.py", "chalicelib/routes/rewards.py", "chalicelib/queues.py"} <= set(names)
    assert any(n.startswith("pynamodb/") for n in names)
    assert any(n.startswith("aws_lambda_powertools/") for n in names)
    assert elf_header[:4] == b"\x7fELF"
    assert struct.unpack("<H", elf_header[18:20])[0] == 0xB7  # EM_AARCH64
