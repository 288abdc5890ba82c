"""`python -m tests.simulation --seed N --steps N [--seeds K] [--minutes M] [--enable FLAG]`.

Starts its own DynamoDB Local and moto server, runs seeds N, N+1, ... (K of them, or until M minutes have
passed), prints one line per seed, and for a failing seed its violations and the command that replays it.
Exit status 1 when any seed failed.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

import click


@click.command()
@click.option("--seed", type=int, default=1, show_default=True, help="first seed")
@click.option("--steps", type=int, default=300, show_default=True, help="steps per seed")
@click.option("--seeds", type=int, default=1, show_default=True, help="how many seeds (seed, seed+1, ...)")
@click.option("--minutes", type=float, default=None,
              help="keep starting new seeds until this many minutes have passed (at least --seeds of them)")
@click.option("--enable", "enable", multiple=True, help="switch on an actor held back while its defect is unfixed")
@click.option("--all-actors", is_flag=True, help="switch on every held-back actor")
@click.option("--verbose", "-v", is_flag=True, help="also print what each run exercised (actions, crash points)")
def main(seed: int, steps: int, seeds: int, minutes: float | None, enable: tuple[str, ...], all_actors: bool,
         verbose: bool) -> None:
    """Simulate the money path under seeded faults and check it against an independent model."""
    from tests.simulation import sim
    from tests.simulation.world import local_stack

    unknown = set(enable) - set(sim.FLAGS)
    if unknown:
        raise click.UsageError(f"unknown actor flag(s) {sorted(unknown)}; known: {sorted(sim.FLAGS)}")
    flags = {name: True for name in (sim.FLAGS if all_actors else enable)}
    deadline = None if minutes is None else time.monotonic() + minutes * 60
    failed = 0
    out = _quiet_stdout()  # the app's log lines and EMF metrics go to stdout; keep only the run lines there
    with local_stack():
        from rewardgate_ops.output import progress

        current, done = seed, 0
        while done < seeds or (deadline is not None and time.monotonic() < deadline):
            with progress("table", steps, f"seed {current}") as advance:
                result = sim.run(current, steps, flags, progress=advance)
            click.echo(f"{result.line()}  ({result.seconds:.0f} s)", file=out)
            if verbose:
                click.echo(f"  crash points fired: {dict(sorted(result.fired.items()))}", file=out)
                click.echo(f"  stats: {dict(sorted(result.stats.items()))}", file=out)
                click.echo(f"  provider: {result.extra['provider']}; credit messages sent "
                           f"{result.extra['queue_sent']}, send failures {result.extra['send_failures']}", file=out)
            if not result.ok:
                failed += 1
                for note in result.notes:
                    click.echo(f"  {note}", file=out)
                click.echo(f"  replay: {result.replay()}", file=out)
            out.flush()
            current, done = current + 1, done + 1
    click.echo(f"seeds={done} failed={failed}", err=True)
    sys.exit(1 if failed else 0)


def _quiet_stdout() -> TextIO:
    """Point file descriptor 1 at /dev/null; return a stream on the real stdout."""
    sys.stdout.flush()
    real = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    return real


if __name__ == "__main__":
    main()
