"""The operator tooling's errors: one base (`OpsError`), and the one-line explanation of any failure.

Every error `rewardgate_ops` raises itself derives from `OpsError` (each keeps the builtin base it always had,
so existing `except RuntimeError` / `ValueError` / `LookupError` clauses still hold). `one_line` turns an AWS,
network or domain failure into the single line the CLI prints; `cli` and `commands._domain` both use it, and
it imports neither.
"""

from __future__ import annotations


class OpsError(Exception):
    """Base of every error the operator tooling raises; its message says what to do."""


def one_line(exc: BaseException) -> str | None:
    """A one-line explanation of an AWS/network failure, or None for anything else."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )
    from pynamodb.exceptions import PynamoDBException

    from chalicelib.errors import RewardgateError

    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or getattr(cause, "cause", None) or (
            cause.__context__ if isinstance(cause, PynamoDBException) else None)
    # The AWS cause first: "no credentials" says more than the "storage unavailable" it was wrapped in.
    for cause in chain:
        if isinstance(cause, NoCredentialsError | PartialCredentialsError):
            return "no AWS credentials: configure a profile (aws configure / AWS_PROFILE) or use --local"
        if isinstance(cause, NoRegionError):
            return "no AWS region: set AWS_REGION (or a profile's region)"
        if isinstance(cause, EndpointConnectionError):
            return f"cannot reach {cause.kwargs.get('endpoint_url')}: is the local stack running (`make run`)?"
        if isinstance(cause, ClientError):
            code = cause.response.get("Error", {}).get("Code", "")
            message = cause.response.get("Error", {}).get("Message", "")
            if code == "ResourceNotFoundException":
                return f"{message or code}: is the stack deployed for this stage (make deploy STAGE=...)?"
            if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException",
                        "ExpiredTokenException", "InvalidClientTokenId"):
                return f"AWS refused the call ({code}): {message}"
            return f"AWS error {code}: {message}"
    for cause in chain:
        if isinstance(cause, RewardgateError):
            return f"{cause.code}: {cause.message}"
    return None
