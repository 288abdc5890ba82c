"""`--json PATH` for every benchmark: the figures it printed, machine-readable, for `bench/report.py`.

One JSON object per run: `bench` (its name), `command` (how it was run), the machine (`cpus`, `load`), the
parameters it ran with and its `figures`. Benchmarks keep printing their report; the file is in addition.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    """The `--json PATH` option."""
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the figures as JSON to PATH (bench/report.py draws charts from them)")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, nearest rank; NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def write(path: Path | None, bench: str, params: dict[str, Any], figures: dict[str, Any]) -> None:
    """Write one run's figures to `path` (nothing when None)."""
    if path is None:
        return
    doc = {"bench": bench, "command": " ".join(["python", *sys.argv]), "cpus": os.cpu_count(),
           "load": [round(x, 2) for x in os.getloadavg()], "params": params, "figures": figures}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
