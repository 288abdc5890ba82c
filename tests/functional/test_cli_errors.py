"""The CLI's failures are one line naming the fix, never a traceback."""

from __future__ import annotations

from click.testing import CliRunner

from rewardgate_ops.cli import rewardgate


def run(tmp_path, *args: str, env: dict | None = None):
    return CliRunner(env=env).invoke(rewardgate, ["--state-dir", str(tmp_path), *args])


def one_line_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert len(lines) == 1, result.output
    return lines[0]


def test_cli_error__no_local_stack__says_how_to_start_it(tmp_path):
    line = one_line_error(run(tmp_path, "--local", "activity", "list"))
    assert "the local stack is not running" in line and "make run" in line


def cli_process(tmp_path, *args: str, env: dict) -> tuple[int, str]:
    """The console script in a process of its own (clients and table models are built once per process)."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import ROOT

    cli = Path(sys.executable).with_name("rewardgate")
    done = subprocess.run([str(cli), "--state-dir", str(tmp_path), *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env, check=False)
    return done.returncode, done.stderr


def test_cli_error__no_aws_credentials__one_line(tmp_path):
    import os

    # no credentials anywhere and no instance metadata to ask: botocore refuses before any network call
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET", "AWS_SESSION",
                                                                     "AWS_PROFILE", "AWS_ENDPOINT_URL"))}
    env |= {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true"}
    code, stderr = cli_process(tmp_path, "--aws", "--stage", "prod", "switch", "list", env=env)
    assert code == 1 and "Traceback" not in stderr, stderr
    assert stderr.splitlines()[-1] == (
        "Error: no AWS credentials: configure a profile (aws configure / AWS_PROFILE) or use --local")


def test_cli_error__stage_not_deployed__names_the_missing_table(tmp_path):
    # a process of its own: table names are fixed when the models are first imported (after the target)
    import os

    code, stderr = cli_process(tmp_path, "--stage", "nostage", "activity", "list", env=dict(os.environ))
    lines = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert code == 1 and "Traceback" not in stderr, stderr
    assert len(lines) == 1 and "is the stack deployed for this stage" in lines[0], stderr
