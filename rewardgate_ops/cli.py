"""`rewardgate`: the operator and developer command line (console script, installed by `make run`).

Global options choose where commands act (see `rewardgate_ops.target` and docs/reference/cli.md):
`--local` (the running local stack), `--aws --stage STAGE` (a deployed stage), or neither (endpoint
variables from the environment, else the local stack if it is up, else an error).
Each subcommand lives in its own module under `rewardgate_ops/commands/` (see that package's docstring);
output, confirmation, secrets and progress follow `rewardgate_ops.output`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

from chalicelib import __version__
from rewardgate_ops.commands import CliContext
from rewardgate_ops.errors import one_line
from rewardgate_ops.target import default_state_dir

COMMAND_MODULES = (
    "rewardgate_ops.commands.local",
    "rewardgate_ops.commands.tp_app",
    "rewardgate_ops.commands.simulate",
    "rewardgate_ops.commands.events",
    "rewardgate_ops.commands.activity",
    "rewardgate_ops.commands.scene",
    "rewardgate_ops.commands.switch",
    "rewardgate_ops.commands.reads",
    "rewardgate_ops.commands.token",
    "rewardgate_ops.commands.keys",
    "rewardgate_ops.commands.reconcile",
    "rewardgate_ops.commands.audit",
    "rewardgate_ops.commands.play_app",
    "rewardgate_ops.commands.play",
)


class RewardgateGroup(click.Group):
    """The root group: every failure ends as one line on stderr (exit 1), never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as exc:
            message = one_line(exc)
            if message is None:
                raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
            raise click.ClickException(message) from exc


@click.group(cls=RewardgateGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "--version", prog_name="rewardgate")
@click.option("--local", "choice", flag_value="local", default=None,
              help="Act on the running local stack (`make run`), whatever the environment says.")
@click.option("--aws", "choice", flag_value="aws",
              help="Act on AWS (credentials and region from the usual AWS profile/environment); needs --stage.")
@click.option("--stage", envvar="RG_STAGE", show_envvar=True, default=None,
              help="Deployment stage to act on (names tables, queues and secrets: rewardgate-{stage}-...).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="RG_LOCAL_DIR",
              show_envvar=True, default=None,
              help="Local stack state folder (stack.json, data, logs, local secrets). Default: the repo's .local")
@click.pass_context
def rewardgate(ctx: click.Context, choice: str | None, stage: str | None, state_dir: Path | None) -> None:
    """rewardgate operator tool: local stack, tp apps, activities and scenes, reads, keys, reconciliation, audit,
    interactive play.

    Every command takes --output table|json; writes take --yes and --dry-run and ask before changing a
    deployed stage.
    """
    from rewardgate_ops.output import metrics_off_while

    metrics_off_while(ctx)
    ctx.obj = CliContext(choice=choice, stage=stage, state_dir=(state_dir or default_state_dir()).absolute())


for _module in COMMAND_MODULES:
    _loaded = importlib.import_module(_module)
    for _command in getattr(_loaded, "commands", None) or (_loaded.command,):
        rewardgate.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    rewardgate(prog_name="rewardgate")
