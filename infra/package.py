"""Build and check the deployable template: `python -m infra.package build --stage prod --out build/package`.

`build` writes the merge template (`infra.template.merge_template`), runs
`chalice package --stage {stage} --merge-template <it> <out>` (which writes `sam.json` and
`deployment.zip`, vendoring Linux wheels for requirements.txt from PyPI), expands the SAM resources
offline with AWS's own translator into `transformed.json` (what CloudFormation will create: the
event source mappings, the API stage), then checks both with `check_template` and fails on any
problem. `make package`, `make iac-check` and the deploy tests call this.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from infra import lambdas
from infra.lambdas import ROOT, configured_stages
from infra.template import SIGV4

TEMPLATE_NAME = "sam.json"
TRANSFORMED_NAME = "transformed.json"
# What `aws cloudformation package` puts in place of the local CodeUri; the translator insists on one.
PLACEHOLDER_CODE_URI = "s3://deployment-bucket/deployment.zip"
DEFAULT_REGION = "us-east-1"
# What a package is made of. `build` records their fingerprint next to its output once every check passed;
# an output whose recorded fingerprint matches the files now is current (the deploy tests reuse it).
INPUTS = ("app.py", "chalicelib", "infra", "requirements.txt", "requirements-dev.txt", ".chalice/config.json")
FINGERPRINT_NAME = "inputs.sha256"
OUTPUT_NAMES = (TEMPLATE_NAME, TRANSFORMED_NAME, "deployment.zip")


def inputs_fingerprint(stage: str, root: Path = ROOT) -> str:
    """SHA-256 over the stage and every input file's path and bytes."""
    files = []
    for name in INPUTS:
        path = root / name
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files += [p for p in found if "__pycache__" not in p.parts]
    digest = hashlib.sha256(stage.encode())
    for path in files:
        digest.update(b"\0" + str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def is_current(out: Path, stage: str) -> bool:
    """Whether `out` holds a checked build of `stage` from the input files as they are now."""
    recorded = out / FINGERPRINT_NAME
    return (recorded.is_file() and all((out / name).is_file() for name in OUTPUT_NAMES)
            and recorded.read_text().strip() == inputs_fingerprint(stage))


def write_merge_template(stage: str, path: Path) -> Path:
    """Write the merge template for `stage` to `path`."""
    from infra.template import merge_template

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merge_template(stage), indent=2, sort_keys=True) + "\n")
    return path


def chalice_environment(stage: str) -> dict[str, str]:
    """The environment `chalice package` runs in: the target stage, no endpoint overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    # The app is imported while packaging, and queue names in its decorators come from RG_STAGE.
    env["RG_STAGE"] = stage
    # Chalice wants a region even to package; the template itself uses ${AWS::Region}.
    env.setdefault("AWS_DEFAULT_REGION", env.get("AWS_REGION", DEFAULT_REGION))
    return env


def chalice_command(stage: str, merge_path: Path, out: Path) -> list[str]:
    """The `chalice package` command line."""
    chalice = Path(sys.executable).with_name("chalice")
    return [str(chalice), "--project-dir", str(ROOT), "package", "--stage", stage,
            "--merge-template", str(merge_path), str(out)]


def build(stage: str, out: Path) -> dict[str, Any]:
    """Package `stage` into `out` and return the checked template; raises on any problem."""
    out = out.resolve()
    (out / FINGERPRINT_NAME).unlink(missing_ok=True)
    fingerprint = inputs_fingerprint(stage)  # before building: an edit made meanwhile leaves the output stale
    merge_path = write_merge_template(stage, out.parent / f"merge-{stage}.json")
    command = chalice_command(stage, merge_path, out)
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT, env=chalice_environment(stage))  # noqa: S603 - our own argv
    template = json.loads((out / TEMPLATE_NAME).read_text())
    expanded = sam_transform(template)
    (out / TRANSFORMED_NAME).write_text(json.dumps(expanded, indent=1) + "\n")
    problems = check_template(template) + [f"after the SAM transform: {p}" for p in check_template(expanded)]
    if problems:
        raise SystemExit("packaged template fails its checks:\n  " + "\n  ".join(problems))
    (out / FINGERPRINT_NAME).write_text(fingerprint + "\n")
    return template


def sam_transform(template: dict[str, Any], region: str = DEFAULT_REGION) -> dict[str, Any]:
    """The plain CloudFormation the SAM transform makes of `template`, computed offline."""
    from samtranslator.translator.transform import transform

    class _NoManagedPolicies:
        # Consulted only for SAM `Policies` shorthands, which this template does not use.
        def load(self) -> dict[str, str]:
            return {}

    copy = json.loads(json.dumps(template))
    for resource in _of_type(copy, "AWS::Serverless::Function").values():
        resource["Properties"]["CodeUri"] = PLACEHOLDER_CODE_URI
    pseudo = {"AWS::Region": region, "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region  # the translator's boto3 session insists on a region
    try:
        expanded = transform(copy, pseudo, _NoManagedPolicies())
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous
    # SAM names what it generates after the SAM resource (`RestAPI` -> `RestAPIapiStage`) but does
    # not copy its Metadata: carry the inline scanner justifications over to those resources.
    for sam_id, sam_resource in template["Resources"].items():
        skips = sam_resource.get("Metadata", {}).get("checkov")
        if not skips or not sam_resource["Type"].startswith("AWS::Serverless::"):
            continue
        for lid, resource in expanded["Resources"].items():
            if lid.startswith(sam_id) and "checkov" not in resource.get("Metadata", {}):
                resource.setdefault("Metadata", {})["checkov"] = skips
    return expanded


# --- checks on the packaged template ------------------------------------------------------------

def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template.get("Resources", {}).items() if r.get("Type") == kind}


def _getatt_target(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value and value["Fn::GetAtt"][1] == "Arn":
        return value["Fn::GetAtt"][0]
    return None


def _queue_of(value: Any, queue_names: dict[str, str]) -> str | None:
    """The logical id of the template queue an event source's `Queue` names (by reference or by ARN)."""
    target = _getatt_target(value)
    if target is not None:
        return target
    if isinstance(value, dict) and isinstance(value.get("Fn::Sub"), str) and len(value) == 1:
        return queue_names.get(value["Fn::Sub"].rsplit(":", 1)[-1])
    return None


def _check_functions(template: dict[str, Any]) -> list[str]:
    problems = []
    resources = template["Resources"]
    roles = _of_type(template, "AWS::IAM::Role")
    queues = _of_type(template, "AWS::SQS::Queue")
    log_groups = _of_type(template, "AWS::Logs::LogGroup")
    retained = {g["Properties"]["LogGroupName"] for g in log_groups.values() if g["Properties"].get("RetentionInDays")}
    queue_names = {q["Properties"]["QueueName"]: lid for lid, q in queues.items()}
    functions = _of_type(template, "AWS::Serverless::Function") | _of_type(template, "AWS::Lambda::Function")
    for lid, fn in functions.items():
        props = fn["Properties"]
        if _getatt_target(props.get("Role")) not in roles:
            problems.append(f"{lid}: Role is not one of this template's roles: {props.get('Role')!r}")
        if f"/aws/lambda/{props.get('FunctionName')}" not in retained:
            problems.append(f"{lid}: no log group with a retention period for {props.get('FunctionName')}")
        for name, event in props.get("Events", {}).items():
            if "Type" not in event:
                problems.append(f"{lid}.{name}: event has no Type (a merge override missed Chalice's event name)")
            if event.get("Type") != "SQS":
                continue
            ev = event["Properties"]
            if ev.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]:
                problems.append(f"{lid}.{name}: FunctionResponseTypes is not [ReportBatchItemFailures]")
            queue_id = _queue_of(ev.get("Queue"), queue_names)
            if queue_id not in queues:
                problems.append(f"{lid}.{name}: Queue is not a queue of this template: {ev.get('Queue')!r}")
                continue
            queue = queues[queue_id]["Properties"]
            if queue.get("VisibilityTimeout", 30) < 6 * props["Timeout"]:
                problems.append(f"{queue_id}: VisibilityTimeout {queue.get('VisibilityTimeout')} < 6 x {lid} "
                                f"Timeout {props['Timeout']}")
            dlq_id = _getatt_target(queue.get("RedrivePolicy", {}).get("deadLetterTargetArn"))
            if dlq_id not in queues:
                problems.append(f"{queue_id}: no dead-letter queue")
            elif queues[dlq_id]["Properties"]["MessageRetentionPeriod"] <= queue["MessageRetentionPeriod"]:
                problems.append(f"{dlq_id}: retention not longer than {queue_id}'s")
    for lid, mapping in _of_type(template, "AWS::Lambda::EventSourceMapping").items():
        if "ReportBatchItemFailures" not in mapping["Properties"].get("FunctionResponseTypes", []):
            problems.append(f"{lid}: event source mapping without ReportBatchItemFailures")
    leftovers = [lid for lid, r in resources.items() if "Type" not in r]
    problems += [f"{lid}: resource has no Type (merge override of a resource Chalice did not emit)"
                 for lid in leftovers]
    return problems


def iam_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(resource id, statement) for every permission statement of every role and managed policy."""
    found = []
    for lid, role in _of_type(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            found += [(lid, s) for s in policy["PolicyDocument"]["Statement"]]
    for kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
        for lid, policy in _of_type(template, kind).items():
            found += [(lid, s) for s in policy["Properties"]["PolicyDocument"]["Statement"]]
    return found


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _check_iam(template: dict[str, Any]) -> list[str]:
    problems = []
    for lid, statement in iam_statements(template):
        for action in _listed(statement.get("Action", [])):
            if "*" in action:
                problems.append(f"{lid}: wildcard action {action}")
        for resource in _listed(statement.get("Resource", [])):
            if resource == "*":
                problems.append(f"{lid}: Resource '*' for {statement.get('Action')}")
        if "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{lid}: NotAction/NotResource")
    return problems


def _check_api(template: dict[str, Any]) -> list[str]:
    api = template["Resources"].get("RestAPI")
    if api is None:
        return []
    # SAM's `DefinitionBody` becomes the RestApi's `Body` after the transform.
    body = api["Properties"].get("DefinitionBody") or api["Properties"]["Body"]
    problems = []
    if body.get("securityDefinitions", {}).get(SIGV4, {}).get("x-amazon-apigateway-authtype") != "awsSigv4":
        problems.append("RestAPI: no awsSigv4 security definition")
    for path, methods in body["paths"].items():
        for method, spec in methods.items():
            secured = {SIGV4: []} in spec.get("security", [])
            if path.startswith("/v1/") and not secured:
                problems.append(f"RestAPI: {method.upper()} {path} is not IAM-authorized")
            if path.startswith("/callbacks/") and spec.get("security"):
                problems.append(f"RestAPI: {method.upper()} {path} must stay public")
    return problems


def _check_tables(template: dict[str, Any]) -> list[str]:
    problems = []
    for lid, table in _of_type(template, "AWS::DynamoDB::Table").items():
        props = table["Properties"]
        if props.get("BillingMode") != "PAY_PER_REQUEST":
            problems.append(f"{lid}: not on-demand")
        if not props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
            problems.append(f"{lid}: no point-in-time recovery")
        if not props.get("SSESpecification", {}).get("SSEEnabled"):
            problems.append(f"{lid}: no SSE")
        if table.get("DeletionPolicy") != "Retain":
            problems.append(f"{lid}: a stack deletion would delete its data")
    return problems


def check_template(template: dict[str, Any]) -> list[str]:
    """Every rule the deployable template must satisfy; an empty list means it does."""
    return _check_functions(template) + _check_iam(template) + _check_api(template) + _check_tables(template)


def main(argv: list[str] | None = None) -> None:
    """Command line: `build`, `merge-template` or `check`."""
    parser = argparse.ArgumentParser(prog="python -m infra.package", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="merge template + chalice package + checks")
    build_cmd.add_argument("--stage", default="prod")
    build_cmd.add_argument("--out", type=Path, default=ROOT / "build" / "package")
    merge_cmd = sub.add_parser("merge-template", help="write only the merge template")
    merge_cmd.add_argument("--stage", default="prod")
    merge_cmd.add_argument("--out", type=Path, required=True)
    check_cmd = sub.add_parser("check", help="check a packaged template")
    check_cmd.add_argument("template", type=Path)
    args = parser.parse_args(argv)
    if args.command in ("build", "merge-template"):
        known = configured_stages()
        if args.stage not in known:
            # A stage without its own block deploys functions with no RG_STAGE: they would use local names.
            parser.error(f"stage {args.stage!r} is not in .chalice/config.json (stages: {', '.join(known)})")
        for name in lambdas.config_on_disk().get("lambda_functions", {}):
            try:  # what each function would refuse at start-up (e.g. RG_PAYOUT_PROVIDER), refused before deploying
                lambdas.deployed_settings(args.stage, name)
            except ValueError as exc:
                parser.error(f"stage {args.stage!r}, function {name}: {exc}")
    if args.command == "build":
        template = build(args.stage, args.out)
        functions = len(_of_type(template, "AWS::Serverless::Function"))
        print(f"packaged {args.out / TEMPLATE_NAME}: {len(template['Resources'])} resources, {functions} functions, "
              "all checks passed")
    elif args.command == "merge-template":
        print(write_merge_template(args.stage, args.out))
    else:
        problems = check_template(json.loads(args.template.read_text()))
        if problems:
            raise SystemExit("\n".join(problems))
        print(f"{args.template}: all checks passed")


if __name__ == "__main__":
    main()
