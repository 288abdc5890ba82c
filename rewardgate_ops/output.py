"""What every `rewardgate` command shares: output, confirmation, secrets, progress, errors.

The conventions (every command follows them; a new command uses these helpers and nothing else):

- **Ids are options** (`--activity-id A --scene-id S`), never positional arguments.
- **`--output table|json`** on every command (`@output_option`; default `table`, or `RG_OUTPUT`).
  `emit(cli, data, table=...)` prints `data` as indented JSON (stdout, nothing else on stdout: pipe it
  to `jq`) or as a `rich` table. Diagnostics (`target: ...`, warnings) go to stderr.
- **Writes** (`@write_options` adds `--yes` and `--dry-run`): call `confirm_write(cli, what, yes,
  dry_run)` before changing anything. `--dry-run` prints what would change and changes nothing;
  against a deployed stage (`--aws`) a write asks for confirmation, or needs `--yes` when stdin is not a
  terminal. The local stack is not asked.
- **Secrets** never come from argv (shell history, `ps`): `read_secret(label, file)` reads the value
  from `--X-file PATH` (`-` = stdin, one line) or from a hidden prompt on a terminal.
- **Progress**: `progress(cli, total, description)` is a `rich` progress bar on stderr (off with
  `--output json` and when stderr is not a terminal); domain logs printed meanwhile appear above it,
  and the process emits no metric lines (`POWERTOOLS_METRICS_DISABLED`: EMF only means something in Lambda).
- **Errors** are one line on stderr (`error: ...`) with exit status 1 — never a traceback; a missing
  stack, credentials or table names what to do (`cli.RewardgateGroup`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = ("table", "json")

METRICS_SWITCH = "POWERTOOLS_METRICS_DISABLED"


def metrics_off_while(ctx: click.Context) -> None:
    """For this invocation, domain code run in-process prints no EMF metric documents (they mean something
    only in Lambda's log stream, and they broke progress bars); restored when the invocation ends."""
    previous = os.environ.get(METRICS_SWITCH)
    os.environ[METRICS_SWITCH] = "true"

    def restore() -> None:
        if previous is None:
            os.environ.pop(METRICS_SWITCH, None)
        else:
            os.environ[METRICS_SWITCH] = previous

    ctx.call_on_close(restore)


def output_option(command: F) -> F:
    """`--output table|json` (also `-o`; default from `RG_OUTPUT`, else table)."""
    return click.option("--output", "-o", "output", type=click.Choice(FORMATS), envvar="RG_OUTPUT",
                        default="table", show_default=True, help="table for people, json for scripts")(command)


def write_options(command: F) -> F:
    """`--yes` (no confirmation) and `--dry-run` (show, change nothing) for commands that change something."""
    command = click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")(command)
    return click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (scripts).")(command)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def emit(output: str, data: Any, table: Callable[[Any], Any] | None = None, title: str | None = None) -> None:
    """Print `data` as JSON, or as the `rich` table `table(data)` builds (a key/value table by default)."""
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str))
        return
    _console().print(table(data) if table is not None else key_values(data, title))


def rich_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> Any:
    """A `rich` table with these columns (numbers right-aligned)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    numeric = [all(isinstance(r[i], int | float) and not isinstance(r[i], bool) for r in rows if r[i] is not None)
               and rows for i in range(len(columns))]
    for index, column in enumerate(columns):
        table.add_column(column, justify="right" if numeric[index] else "left")
    for row in rows:
        table.add_row(*("" if cell is None else _cell(cell) for cell in row))
    return table


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def key_values(data: Any, title: str | None = None) -> Any:
    """A two-column table of a JSON object (nested values as compact JSON); a list becomes rows."""
    if isinstance(data, list):
        keys = sorted({k for item in data if isinstance(item, dict) for k in item})
        return rich_table(keys, [[item.get(k) for k in keys] for item in data], title)
    return rich_table(("field", "value"), [(k, v) for k, v in data.items()], title)


def confirm_write(target: Any, what: str, yes: bool, dry_run: bool) -> bool:
    """Whether to go ahead with a write: False for `--dry-run` (after saying what it would do).

    Against AWS, ask (or require `--yes` when there is no terminal to ask on).
    """
    if dry_run:
        click.echo(f"dry run: would {what} ({target.description}); nothing changed", err=True)
        return False
    if target.kind != "aws" or yes:
        return True
    if not sys.stdin.isatty():
        raise click.ClickException(f"refusing to {what} on {target.description} without --yes "
                                   "(no terminal to confirm on)")
    if not click.confirm(f"{what} on {target.description}?", default=False, err=True):
        raise click.ClickException("not confirmed; nothing changed")
    return True


def read_secret(label: str, path: str | None, required: bool = True) -> str | None:
    """A secret from a file (`-` = stdin, first line) or a hidden prompt; never from the command line."""
    if path is not None:
        try:
            with click.open_file(path, encoding="utf-8") as handle:
                value = handle.readline().rstrip("\r\n")
        except OSError as exc:
            raise click.BadParameter(f"cannot read the {label} from {path}: {exc.strerror}") from exc
        if not value:
            raise click.BadParameter(f"{path} holds no {label}")
        return value
    if not required:
        return None
    if not sys.stdin.isatty():
        raise click.UsageError(f"the {label} is read from a file or a prompt, never from the command line: pass "
                               f"its --{label.replace(' ', '-')}-file PATH (- for stdin), or run on a terminal")
    return click.prompt(f"{label}", hide_input=True, err=True)


@contextlib.contextmanager
def progress(output: str, total: int | None, description: str) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr; yields `advance(n, total=None, description=None)` (a new total or description
    when the work grows or changes phase). Silent with JSON output or without a terminal."""
    if output == "json" or not sys.stderr.isatty():
        yield lambda _n=1, **_: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_console(stderr=True), redirect_stdout=True, redirect_stderr=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1, total=None, description=None: bar.update(task, advance=n, total=total,
                                                                    description=description)
