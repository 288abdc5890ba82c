"""bench/report.py draws a chart for each kind of run it is given and says which it skipped; its inputs are the
benchmarks' --json documents (built here by a factory, as bench/results.py writes them)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report

PNG = b"\x89PNG\r\n\x1a\n"


def run_doc(bench: str, params: dict, figures: dict) -> dict:
    return {"bench": bench, "command": f"python bench/{bench}.py", "cpus": 2, "load": [1.0, 1.0, 1.0],
            "params": params, "figures": figures}


def play(threads: int, batch: int, per_s: float) -> dict:
    return run_doc("play", {"threads": threads, "events": 100, "batch": batch, "danmaku": 20}, {
        "ingest_events_per_s": per_s, "floor_ingest_events_per_s": per_s * 2, "push_latency_ms_p50": 10.0 * batch,
        "push_latency_ms_p99": 20.0 * batch})


def mode(wru: float, usd: float) -> dict:
    return {"wru_per_reward": wru, "wru_per_reward_by_table": {"ledger": wru / 2, "wallets": wru / 2},
            "usd_per_million": {"dynamodb_writes": usd * 0.9, "sqs": usd * 0.1, "total": usd}}


def write_runs(folder: Path, docs: dict[str, dict]) -> Path:
    folder.mkdir()
    for name, doc in docs.items():
        (folder / name).write_text(json.dumps(doc))
    return folder


def test_bench_report__every_kind_of_run__one_png_each(tmp_path, capsys):
    runs = write_runs(tmp_path / "runs", {
        **{f"play-batch-{b}.json": play(2, b, 100.0 * b) for b in (1, 5, 25)},
        "play-threads-1.json": play(1, 25, 900.0), "play-threads-4.json": play(4, 25, 1500.0),
        "rain.json": run_doc("rain", {"users": 10}, {"rewardgate": mode(8.0, 5.5), "naive": mode(17.0, 16.2)}),
        "callbacks.json": run_doc("callbacks", {"n": 30}, {"handler_per_s": 100.0, "floor_per_s": 120.0}),
        "live.json": run_doc("live", {"events": 100, "batch": 10}, {"points": [
            {"connections": c, "events_per_s": 50.0 * c, "floor_events_per_s": 80.0 * c, "latency_ms_p50": 5.0,
             "latency_ms_p99": 9.0, "floor_latency_ms_p50": 1.0, "floor_latency_ms_p99": 2.0} for c in (1, 10)]}),
    })
    out = tmp_path / "img"
    assert report.main(["--runs", str(runs), "--out", str(out)]) == 0
    made = sorted(p.name for p in out.iterdir())
    assert made == ["bench-callbacks.png", "bench-live-connections.png", "bench-play-batch.png",
                    "bench-play-threads.png", "bench-rain-cost.png", "bench-rain-write-units.png"]
    assert all((out / name).read_bytes().startswith(PNG) for name in made)
    assert "skipped" not in capsys.readouterr().out


def test_bench_report__summary_rain_only__cost_charts_skipped_not_invented(tmp_path, capsys):
    # a --summary rain has no naive mode: there is nothing to put beside rewardgate, so no chart
    runs = write_runs(tmp_path / "runs", {"rain.json": run_doc("rain", {"summary": True},
                                                               {"rewardgate": mode(8.0, 5.5)})})
    out = tmp_path / "img"
    assert report.main(["--runs", str(runs), "--out", str(out)]) == 0
    assert list(out.iterdir()) == []
    printed = capsys.readouterr().out
    assert "rain_cost: skipped (no runs for it)" in printed and "rain_write_units: skipped" in printed


def test_bench_report__no_runs__fails_saying_how_to_make_them(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    assert report.main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "img")]) == 1
    assert "--json" in capsys.readouterr().err
