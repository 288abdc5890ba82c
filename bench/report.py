"""`make bench-report`: the benchmarks' `--json` results as PNG charts for the docs.

    .venv/bin/python bench/report.py [--runs bench/runs] [--out docs/development/img]

Reads every `*.json` in `--runs` (written by `bench/*.py --json PATH`) and draws, from whichever runs are there:

- `bench-play-batch.png`: live events ingested per second and push-request latency (p50, p99) against the
  number of events per request (`bench/play.py --batch N`, one JSON per N);
- `bench-play-threads.png`: the same against concurrent platform connections (`--threads N`);
- `bench-live-connections.png`: pushed events per second and ingest-to-receipt latency against WebSocket
  connections, beside the bare-post floor (`bench/live.py`);
- `bench-rain-write-units.png`: DynamoDB write units per credited reward by table and index, rewardgate
  beside the naive one-by-one design (`bench/rain.py` without `--summary`);
- `bench-rain-cost.png`: dollars per million rewards by line item, rewardgate beside naive;
- `bench-callbacks.png`: callbacks acknowledged per second by the real handler beside the bare floor.

A chart whose runs are missing is skipped and said so; the figures are drawn as measured, never adjusted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIZE = (6.4, 3.4)
DPI = 100


def load(runs: Path) -> list[dict[str, Any]]:
    """Every run document in `runs`, sorted by file name."""
    return [json.loads(p.read_text()) | {"file": p.name} for p in sorted(runs.glob("*.json"))]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "figure.dpi": DPI})
    return plt


def _caption(fig: Any, docs: list[dict[str, Any]]) -> None:
    cpus = {d["cpus"] for d in docs}
    loads = [d["load"][0] for d in docs]
    fig.text(0.01, 0.01, f"local stack (DynamoDB Local + moto), {'/'.join(map(str, cpus))} CPUs, load average "
                         f"{min(loads):.1f}-{max(loads):.1f} while measuring", fontsize=6, color="0.4")


def _save(fig: Any, out: Path, name: str) -> Path:
    path = out / name
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=DPI)
    _plt().close(fig)
    return path


def _throughput_latency(docs: list[dict[str, Any]], x_key: str, x_label: str, title: str, out: Path,
                        name: str) -> Path:
    plt = _plt()
    docs = sorted(docs, key=lambda d: d["params"][x_key])
    xs = [d["params"][x_key] for d in docs]
    fig, (left, right) = plt.subplots(1, 2, figsize=SIZE)
    left.plot(xs, [d["figures"]["ingest_events_per_s"] for d in docs], "o-", label="rewardgate ingest")
    left.plot(xs, [d["figures"]["floor_ingest_events_per_s"] for d in docs], "s--", color="0.5",
              label="floor: bare transaction")
    left.set(xlabel=x_label, ylabel="events / s", title="throughput")
    right.plot(xs, [d["figures"]["push_latency_ms_p50"] for d in docs], "o-", label="p50")
    right.plot(xs, [d["figures"]["push_latency_ms_p99"] for d in docs], "^-", label="p99")
    right.set(xlabel=x_label, ylabel="ms per request", title="request latency")
    for ax in (left, right):
        if max(xs) / max(min(xs), 1) >= 10:
            ax.set_xscale("log")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    _caption(fig, docs)
    return _save(fig, out, name)


def play_batch(docs: list[dict[str, Any]], out: Path) -> Path | None:
    """Throughput and latency against events per request (threads fixed)."""
    runs = [d for d in docs if d["bench"] == "play" and d["file"].startswith("play-batch")]
    if len(runs) < 2:
        return None
    threads = "/".join(str(t) for t in sorted({d["params"]["threads"] for d in runs}))
    return _throughput_latency(runs, "batch", "events per request",
                               f"live events ingested ({threads} platform connections)", out, "bench-play-batch.png")


def play_threads(docs: list[dict[str, Any]], out: Path) -> Path | None:
    """Throughput and latency against concurrent platform connections (batch fixed)."""
    # every play run at 25 events per request (the batch sweep's 25 is one more point), one per thread count
    runs = list({d["params"]["threads"]: d for d in docs if d["bench"] == "play" and d["params"]["batch"] == 25}
                .values())
    if len(runs) < 2:
        return None
    return _throughput_latency(runs, "threads", "concurrent platform connections", "live events ingested "
                               "(25 events per request)", out, "bench-play-threads.png")


def live_connections(docs: list[dict[str, Any]], out: Path) -> Path | None:
    """Pushed events per second and latency against WebSocket connections, beside the floor."""
    runs = [d for d in docs if d["bench"] == "live"]
    if not runs:
        return None
    points = sorted(runs[-1]["figures"]["points"], key=lambda p: p["connections"])
    plt = _plt()
    xs = [p["connections"] for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=SIZE)
    left.plot(xs, [p["events_per_s"] for p in points], "o-", label="rewardgate push")
    left.plot(xs, [p["floor_events_per_s"] for p in points], "s--", color="0.5", label="floor: bare posts")
    left.set(xlabel="WebSocket connections", ylabel="events delivered / s", title="throughput")
    right.plot(xs, [p["latency_ms_p50"] for p in points], "o-", label="p50")
    right.plot(xs, [p["latency_ms_p99"] for p in points], "^-", label="p99")
    right.plot(xs, [p["floor_latency_ms_p99"] for p in points], "s--", color="0.5", label="floor p99")
    right.set(xlabel="WebSocket connections", ylabel="ms ingest to receipt", title="latency")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"live push ({runs[-1]['params']['events']} events, batches of {runs[-1]['params']['batch']})")
    _caption(fig, runs[-1:])
    return _save(fig, out, "bench-live-connections.png")


def _rain(docs: list[dict[str, Any]]) -> dict[str, Any] | None:
    runs = [d for d in docs if d["bench"] == "rain" and {"rewardgate", "naive"} <= set(d["figures"])]
    return runs[-1] if runs else None


def _bars(ax: Any, labels: list[str], series: dict[str, list[float]]) -> None:
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        positions = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        bars = ax.bar(positions, values, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=6)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)


def rain_write_units(docs: list[dict[str, Any]], out: Path) -> Path | None:
    """Write units per credited reward by table and index, rewardgate beside naive."""
    run = _rain(docs)
    if run is None:
        return None
    figures = run["figures"]
    tables = sorted(set(figures["rewardgate"]["wru_per_reward_by_table"])
                    | set(figures["naive"]["wru_per_reward_by_table"]))
    plt = _plt()
    fig, ax = plt.subplots(figsize=SIZE)
    _bars(ax, tables, {mode: [figures[mode]["wru_per_reward_by_table"].get(t, 0.0) for t in tables]
                       for mode in ("rewardgate", "naive")})
    ax.set(ylabel="write units per credited reward",
           title=f"DynamoDB write units by table/index (rewardgate {figures['rewardgate']['wru_per_reward']:.2f}, "
                 f"naive {figures['naive']['wru_per_reward']:.2f} in all)")
    _caption(fig, [run])
    return _save(fig, out, "bench-rain-write-units.png")


def rain_cost(docs: list[dict[str, Any]], out: Path) -> Path | None:
    """Dollars per million rewards by line item, rewardgate beside naive."""
    run = _rain(docs)
    if run is None:
        return None
    figures = run["figures"]
    items = [k for k in figures["rewardgate"]["usd_per_million"] if k != "total"]
    plt = _plt()
    fig, ax = plt.subplots(figsize=SIZE)
    modes = ["rewardgate", "naive"]
    bottoms = [0.0, 0.0]
    for item in items:
        values = [figures[m]["usd_per_million"][item] for m in modes]
        ax.bar(modes, values, 0.5, bottom=bottoms, label=item.replace("_", " "))
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    for x, mode in enumerate(modes):
        ax.text(x, bottoms[x], f"${figures[mode]['usd_per_million']['total']:.2f}", ha="center", va="bottom")
    ax.set(ylabel="US$ per million credited rewards", title="what a million rewards cost on AWS (list prices)")
    ax.legend(fontsize=6, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    _caption(fig, [run])
    return _save(fig, out, "bench-rain-cost.png")


def callbacks(docs: list[dict[str, Any]], out: Path) -> Path | None:
    """Callbacks acknowledged per second beside the floor."""
    runs = [d for d in docs if d["bench"] == "callbacks"]
    if not runs:
        return None
    figures = runs[-1]["figures"]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(SIZE[0], 2.4))
    names = ["real handler", "floor: verify+decrypt, put, send"]
    values = [figures["handler_per_s"], figures["floor_per_s"]]
    bars = ax.barh(names, values, color=["C0", "0.6"])
    ax.bar_label(bars, fmt="%.0f/s", fontsize=7)
    ax.set(xlabel="callbacks per second (one thread)", title=f"callback gateway ({runs[-1]['params']['n']} callbacks)")
    ax.grid(axis="x", alpha=0.3)
    _caption(fig, runs[-1:])
    return _save(fig, out, "bench-callbacks.png")


CHARTS = (play_batch, play_threads, live_connections, rain_write_units, rain_cost, callbacks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "bench" / "runs", help="the --json files (bench/runs)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "development" / "img",
                        help="where the PNGs go (docs/development/img)")
    args = parser.parse_args(argv)
    docs = load(args.runs)
    if not docs:
        print(f"no runs in {args.runs}: run the benchmarks with --json {args.runs}/NAME.json", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for chart in CHARTS:
        path = chart(docs, args.out)
        print(f"{chart.__name__}: " + (str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
                                       if path else "skipped (no runs for it)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
