"""A benchmark's stdout is its figures and nothing else (no EMF metric document per request), and `--json PATH`
writes the same figures for `bench/report.py`. Run at the smallest size that still exercises every part."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_callbacks__small_run__stdout_is_the_figures_and_json_has_them(tmp_path):
    # GIVEN the callbacks benchmark at its smallest WHEN it runs with --json
    out = tmp_path / "callbacks.json"
    done = subprocess.run([sys.executable, "bench/callbacks.py", "--n", "30", "--warmup", "5", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    # THEN stdout holds only its five figure lines, no metrics documents
    assert [line for line in lines if line.lstrip().startswith("{")] == []
    assert [line.split(":")[0].strip() for line in lines] == ["callbacks", "handler", "floor",
                                                             "of which verify+decrypt alone", "ratio"]
    # AND the JSON has the same figures
    doc = json.loads(out.read_text())
    assert doc["bench"] == "callbacks" and doc["params"]["n"] == 30
    handler = doc["figures"]["handler_per_s"]
    assert handler > 0 and f"{handler:8.0f} acknowledged/s" in done.stdout
    assert doc["figures"]["answered_success"] == 30


def test_bench_rain__summary_run__stdout_is_the_report_and_json_has_the_figures(tmp_path):
    # GIVEN the rain at a small size WHEN it runs with --summary and --json
    out = tmp_path / "rain.json"
    done = subprocess.run([sys.executable, "bench/rain.py", "--summary", "--users", "20", "--rounds", "1",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    # THEN no metrics document reaches stdout, which ends with the summary line
    assert [line for line in done.stdout.splitlines() if line.lstrip().startswith("{")] == []
    last = done.stdout.splitlines()[-1]
    assert last.startswith("wru_grant=") and last.endswith("oversold=0 lost=0 double_credits=0")
    # AND the JSON carries the same money figures and the independent check's counts
    figures = json.loads(out.read_text())["figures"]
    assert f"usd_per_million={figures['rewardgate']['usd_per_million']['total']:.2f}" in last
    assert (figures["oversold"], figures["lost"], figures["double_credits"], figures["ok"]) == (0, 0, 0, True)
