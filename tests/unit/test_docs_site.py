"""The documentation site against the code: commands that exist, runbooks every alarm links to, invariants
whose every named file, test, finding and probe exists, and a configuration reference that cannot go stale.

Unit tier: no services; the site itself is built by `mkdocs build --strict` in `make test`.
"""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`(rewardgate [^`\[\]|]+)`")  # not usage syntax: `rewardgate audit [--limit N]`
SUBSHELL = re.compile(r"\$\(\s*(?:\S*/)?(rewardgate [^)]*)\)")


def command_lines(text: str, inline: bool = True) -> list[str]:
    """Every `rewardgate ...` command a page tells a reader to run: shell blocks (continuations joined,
    comments dropped, each side of a pipe), `$(rewardgate ...)` inside them, and (`inline`) code spans."""
    found = []
    for lang, block in FENCE.findall(text):
        if lang not in ("sh", "bash", "shell", ""):
            continue
        for line in block.replace("\\\n", " ").splitlines():
            found += SUBSHELL.findall(line)
            try:
                words = shlex.split(line, comments=True)
            except ValueError:
                continue
            command: list[str] = []
            for word in [*words, "|"]:
                if word in ("|", "&&", ";", "||"):
                    if command and Path(command[0]).name == "rewardgate":
                        found.append(shlex.join(["rewardgate", *command[1:]]))
                    command = []
                else:
                    command.append(word)
    if inline:
        found += INLINE.findall(FENCE.sub("", text))
    return found


def documented_commands() -> list[tuple[str, str, bool]]:
    """(page, command line, runnable): runnable lines come from shell blocks; prose spans may name a command
    without the required options a run needs (`rewardgate reconcile`), so only the names must exist."""
    found = []
    for page in PAGES:
        text, name = page.read_text(), str(page.relative_to(ROOT))
        runnable = command_lines(text, inline=False)
        found += [(name, line, True) for line in runnable]
        found += [(name, line, False) for line in INLINE.findall(FENCE.sub("", text)) if "..." not in line]
    return found


def parse(args: list[str]) -> click.Context:
    """Resolve and parse a command line as `rewardgate` would, without running anything."""
    from rewardgate_ops.cli import rewardgate

    ctx = rewardgate.make_context("rewardgate", list(args))
    command: click.Command = rewardgate
    while isinstance(command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]  # as click's own Group.invoke reads them (click 8.2+)
        if not rest:
            raise click.UsageError("no subcommand", ctx)
        name, command, rest = command.resolve_command(ctx, rest)
        if not isinstance(command, click.Group):
            _no_stray_words(command, name, rest, ctx)
        ctx = command.make_context(name, rest, parent=ctx)
    return ctx


def _no_stray_words(command: click.Command, name: str, args: list[str], parent: click.Context) -> None:
    """Words the command cannot take (`switch set grants --off`: `--name` forgotten) are refused before a
    missing required option is reported, so a prose span naming a command cannot hide them."""
    ctx = click.Context(command, info_name=name, parent=parent, resilient_parsing=True)
    _, extra, _ = command.make_parser(ctx).parse_args(list(args))
    if extra and not any(isinstance(p, click.Argument) for p in command.params):
        raise click.UsageError(f"Got unexpected extra arguments ({' '.join(extra)})", ctx)


def test_command_lines__pipes_continuations_comments_and_subshells__each_command_found():
    # GIVEN a page's shell block and prose as the tutorials write them
    text = ("```sh\necho t | rewardgate tp-app add --tp-app-id a \\\n    --platform douyin   # note\n"
            "eval \"$(.venv/bin/rewardgate local env)\"\n# rewardgate not-a-command\n```\n"
            "Run `rewardgate keys show` once.\n")
    # WHEN its command lines are collected
    # THEN each real command is found once, whole, and the comment is not
    assert command_lines(text) == ["rewardgate tp-app add --tp-app-id a --platform douyin", "rewardgate local env",
                                   "rewardgate keys show"]


def test_documented_commands__the_tutorials__are_found():
    # GIVEN the two tutorials, whose runnable commands are the newcomer's path
    commands = [line for page, line, runnable in documented_commands()
                if runnable and page.startswith("docs/tutorials/")]
    # THEN their CLI commands are collected (a parser that silently found none would prove nothing)
    assert len(commands) >= 25
    assert "rewardgate play code --anchor-id 42 --room-id 9001 --uname Streamer" in commands


@pytest.mark.parametrize(("page", "line", "runnable"), documented_commands())
def test_documented_command__parses_in_the_cli(page, line, runnable):
    # GIVEN a `rewardgate ...` command line a page tells its reader to run (or, in prose, names)
    args = shlex.split(line)[1:]
    # WHEN the CLI resolves and parses it (nothing runs)
    try:
        parse(args)
    except click.ClickException as exc:
        # THEN the command and every option it names exist (and a runnable line has every required option)
        if runnable or not isinstance(exc, click.MissingParameter):
            pytest.fail(f"{page}: `{line}` does not parse: {exc.format_message()}")


def test_parse__a_removed_command_or_option__fails():
    # GIVEN command lines naming a subcommand and an option the CLI does not have
    # WHEN parsed THEN each is refused, as a documented command that disappeared would be
    with pytest.raises(click.UsageError):
        parse(["scene", "delete", "--activity-id", "a"])
    with pytest.raises(click.NoSuchOption):
        parse(["switch", "set", "--name", "grants", "--off", "--forever"])
    with pytest.raises(click.UsageError, match="unexpected extra arguments"):
        parse(["switch", "set", "grants", "--off"])


# --- alarms and their runbooks ------------------------------------------------------------------


@functools.cache
def alarms() -> dict[str, str]:
    """AlarmName -> AlarmDescription of every alarm the prod template deploys."""
    from infra.template import merge_template

    return {r["Properties"]["AlarmName"]: r["Properties"]["AlarmDescription"]
            for r in merge_template("prod")["Resources"].values() if r.get("Type") == "AWS::CloudWatch::Alarm"}


def test_alarms__every_description__links_to_its_runbook_page_in_the_site():
    from infra.alarms import RUNBOOKS

    nav = (ROOT / "mkdocs.yml").read_text()
    link = re.compile(re.escape(RUNBOOKS) + r"([a-z0-9-]+)/(?:#([a-z0-9-]+))?$")
    # GIVEN every alarm the prod stack deploys
    assert len(alarms()) >= 10
    missing = []
    for name, description in alarms().items():
        # THEN its description ends with a runbook address under the one docs URL ...
        match = link.search(description)
        if not match:
            missing.append(f"{name}: no runbook link at the end of {description!r}")
            continue
        page, anchor = match.groups()
        source = DOCS / "operations" / "alarms" / f"{page}.md"
        # ... whose page exists, is in the nav, and holds the anchor it names
        if not source.exists():
            missing.append(f"{name}: {source.relative_to(ROOT)} does not exist")
        elif f"operations/alarms/{page}.md" not in nav:
            missing.append(f"{name}: {page}.md is not in mkdocs.yml's nav")
        elif anchor and f"{{#{anchor}}}" not in source.read_text():
            missing.append(f"{name}: {page}.md has no heading {{#{anchor}}}")
    assert missing == []


def test_docs_url__written_once__the_site_and_the_alarms_agree():
    from infra.alarms import DOCS_URL

    # GIVEN mkdocs.yml, which sets no site_url of its own
    assert not re.search(r"^site_url:", (ROOT / "mkdocs.yml").read_text(), re.M)
    # THEN the build takes it from infra/alarms.py, where the deployed runbook links take theirs
    assert load_hooks().on_config({"site_url": None})["site_url"] == DOCS_URL


# --- invariants ---------------------------------------------------------------------------------

INVARIANT = re.compile(r"^## (INV-\d\d) · .*?(?=^## |\Z)", re.M | re.S)
FIELDS = ("Enforced", "Reconciliation", "Simulation probe", "Tests")


def invariants() -> dict[str, str]:
    return dict(m.group(1, 0) for m in INVARIANT.finditer((DOCS / "explanation" / "invariants.md").read_text()))


def field(section: str, name: str) -> str:
    match = re.search(rf"^- \*\*{name}\*\*: (.*?)(?=^- \*\*|\Z)", section, re.M | re.S)
    return match.group(1) if match else ""


def code_text() -> str:
    return "\n".join(p.read_text() for p in (ROOT / "chalicelib").rglob("*.py"))


def test_invariants__numbered_in_order_each_with_every_field():
    found = invariants()
    # THEN ids run INV-01.. without a gap, and each says where it is enforced, what verifies it and its tests
    assert list(found) == [f"INV-{n:02d}" for n in range(1, len(found) + 1)]
    assert len(found) >= 15
    assert {(inv, name) for inv, text in found.items() for name in FIELDS if not field(text, name).strip()} == set()


def test_invariants__every_file_test_finding_and_probe_named__exists_in_the_code():
    code = code_text()
    probes = (ROOT / "tests" / "simulation" / "probes.py").read_text()
    model = (ROOT / "tests" / "simulation" / "model.py").read_text()
    wrong = []
    for inv, text in invariants().items():
        for path in re.findall(r"`((?:chalicelib|infra|tests|rewardgate_ops)/[\w/]+\.py)", text):
            if not (ROOT / path).exists():
                wrong.append(f"{inv}: file {path}")
        for path, test in re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", field(text, "Tests")):
            if (ROOT / path).exists() and not re.search(rf"^\s*def {test}\(", (ROOT / path).read_text(), re.M):
                wrong.append(f"{inv}: test {path}::{test}")
        if not re.search(r"`tests/[\w/]+\.py::test_\w+`", field(text, "Tests")):
            wrong.append(f"{inv}: no test named")
        for kind in re.findall(r"`([a-z][a-z_]+)`", field(text, "Reconciliation")):
            if f'"{kind}"' not in code:
                wrong.append(f"{inv}: reconciliation finding {kind} is not a string in chalicelib")
        for kind in re.findall(r"`([a-z][a-z_]+)`", field(text, "Simulation probe")):
            if f'"{kind}"' not in probes + model:
                wrong.append(f"{inv}: simulation probe {kind} is not a violation kind of tests/simulation")
    assert wrong == []


# --- the configuration reference --------------------------------------------------------------


def load_hooks():
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return hooks


def test_settings_reference__every_variable_the_code_reads__listed_with_its_default():
    hooks = load_hooks()
    table = hooks.settings_markdown()
    # GIVEN the variables the settings modules read
    code = hooks.read_settings()
    assert {"RG_STAGE", "RG_HOUR_BUCKETS", "RG_PLAY_BUCKETS", "RG_LIVE_CHUNK", "RG_LOG_LEVEL"} <= set(code)
    # THEN each is a row with the default the code has
    assert "| `RG_HOUR_BUCKETS` | `16` |" in table
    assert "| `RG_CALLBACK_MAX_BODY_BYTES` | `65536` |" in table
    assert all(f"| `{name}` |" in table for name in code)


def test_settings_reference__a_variable_without_meaning__fails_the_build(monkeypatch):
    from mkdocs.exceptions import PluginError

    hooks = load_hooks()
    meanings = hooks.read_meanings()
    # GIVEN a meanings file that lost one variable the code still reads
    monkeypatch.setattr(hooks, "read_meanings", lambda: {k: v for k, v in meanings.items() if k != "RG_LIVE_CHUNK"})
    # WHEN the reference is generated THEN the build stops, naming it
    with pytest.raises(PluginError, match="RG_LIVE_CHUNK"):
        hooks.settings_markdown()
