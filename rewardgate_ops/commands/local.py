"""`rewardgate local ...`: the embedded local stack (`local up` is what `make run` runs)."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from rewardgate_ops.commands import CliContext, pass_cli
from rewardgate_ops.output import emit, output_option
from rewardgate_ops.target import LOCAL_STAGE, live_stack, stack_file


@click.group("local")
def command() -> None:
    """The embedded local stack: DynamoDB Local, moto, the API server (REST and WebSocket), workers and schedules."""


@command.command("up")
@click.option("--api-port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="The API server's port (127.0.0.1).")
@click.option("--ws-port", type=click.IntRange(1, 65535), default=8003, show_default=True,
              help="The WebSocket API's port (127.0.0.1): the wss_link /v2/app/start answers.")
@click.option("--dynamodb-port", type=click.IntRange(1, 65535), default=8001, show_default=True,
              help="DynamoDB Local's port (it listens on every interface: it has no bind-address option).")
@click.option("--moto-port", type=click.IntRange(1, 65535), default=8002, show_default=True,
              help="moto server's port (127.0.0.1): SQS and Secrets Manager.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where DynamoDB Local persists its data. Default: <state-dir>/data (.local/data).")
@click.option("--reload/--no-reload", default=True, show_default=True,
              help="Restart the API, workers and schedules when app.py, chalicelib/ or .chalice/config.json change.")
@output_option
@pass_cli
def up(cli: CliContext, api_port: int, ws_port: int, dynamodb_port: int, moto_port: int, data_dir: Path | None,
       reload: bool, output: str) -> None:
    """Start the whole application locally and serve until Ctrl-C, which stops everything it started."""
    if cli.choice == "aws":
        raise click.UsageError("`local up` always runs the local stack; drop --aws")
    from rewardgate_ops.local_stack import LocalStackOptions, run_forever

    options = LocalStackOptions(
        api_port=api_port, ws_port=ws_port, dynamodb_port=dynamodb_port, moto_port=moto_port, state_dir=cli.state_dir,
        data_dir=data_dir.absolute() if data_dir else None, reload=reload,
    )
    def show(table: str) -> None:
        # the stack's description: its table for people; one JSON document for scripts
        if output == "json":
            import json

            info = json.loads((cli.state_dir / "stack.json").read_text())
            emit(output, info)
        else:
            click.echo(table)

    raise SystemExit(run_forever(options, echo=show))


@command.command("env")
@output_option
@pass_cli
def env(cli: CliContext, output: str) -> None:
    """Print `export` lines that point the AWS CLI, boto3 and scripts at the running local stack.

    Use: eval "$(rewardgate local env)"  (with --output json: the variables as one JSON object)
    """
    info = live_stack(cli.state_dir)
    if info is None:
        raise click.ClickException(f"the local stack is not running (no live {stack_file(cli.state_dir)})")
    from rewardgate_ops.services import LOCAL_CREDENTIALS

    values = {**LOCAL_CREDENTIALS, **info.environment(), "RG_STAGE": LOCAL_STAGE, "RG_API_URL": info.api.url}
    if output == "json":
        emit(output, values)
        return
    for name, value in sorted(values.items()):
        click.echo(f"export {name}={shlex.quote(value)}")
