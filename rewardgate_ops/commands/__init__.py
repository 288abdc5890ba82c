"""The `rewardgate` subcommands, one module each, plus the context they share.

Adding a command: write `rewardgate_ops/commands/<name>.py` exposing a click command or group named
`command`, and list the module in `rewardgate_ops.cli.COMMAND_MODULES`. Follow the conventions of
`rewardgate_ops.output` (ids as options, `@output_option` + `emit`, `@write_options` + `confirm_write`,
`read_secret`, `progress`). A command that talks to AWS
(or the local stack) calls `cli.target()` before it uses anything from `chalicelib` that reads
settings, and imports the table models only after that: table names, the stage and the boto3 clients
are fixed on first use (the models at import), so they must see the target's environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import click

from rewardgate_ops.target import Target, TargetError, live_stack, resolve_target


@dataclass
class CliContext:
    """The global options, and the target they resolve to (once, on first use)."""

    choice: str | None
    stage: str | None
    state_dir: Path
    _target: Target | None = field(default=None, repr=False)

    def target(self) -> Target:
        """Resolve the target, point this process's AWS clients at it, and say where we act (stderr)."""
        if self._target is None:
            try:
                target = resolve_target(self.choice, self.stage, os.environ, self.state_dir, live_stack(self.state_dir))
            except TargetError as exc:
                raise click.ClickException(str(exc)) from exc
            target.apply(os.environ)
            from chalicelib import process_state

            process_state.reset()  # every cache was built for the previous target
            click.echo(f"target: {target.description}", err=True)
            self._target = target
        return self._target


    def caller(self) -> str:
        """Who runs this command, for the audit log: the STS identity on AWS, else `local:<user>`."""
        target = self.target()
        if target.kind == "aws":
            from chalicelib.clients import client

            return client("sts").get_caller_identity()["Arn"]
        import getpass

        return f"local:{getpass.getuser()}"

    def confirm(self, what: str, yes: bool, dry_run: bool) -> bool:
        """`rewardgate_ops.output.confirm_write` for this command's target."""
        from rewardgate_ops.output import confirm_write

        return confirm_write(self.target(), what, yes, dry_run)

    def audit(self, action: str, target: dict, body: object = None) -> None:
        """Record an operator's change in the audit log (before making it)."""
        from chalicelib.audit import log as audit_log
        from rewardgate_ops.commands._domain import domain_call

        caller = self.caller()
        domain_call(lambda: audit_log.record(action, caller, target, body))


pass_cli = click.make_pass_decorator(CliContext)
