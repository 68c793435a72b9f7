#!/usr/bin/env python3
"""Print criterion medians of the last `cargo bench` run as a Markdown table
with each runtime's time relative to runner's (ratio > 1: runner is faster).

Usage: python3 scripts/bench-table.py [GROUP ...]
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
RUNTIMES = ["runner", "runner_debug_on", "tokio_current_thread", "smol", "futures_localpool"]
groups = sys.argv[1:] or ["spawn_join_100k", "yield_1m", "ping_pong_100k"]


def median_ms(group, runtime):
    f = ROOT / group / runtime / "new" / "estimates.json"
    if not f.exists():
        return None
    return json.loads(f.read_text())["median"]["point_estimate"] / 1e6


print("| benchmark | " + " | ".join(RUNTIMES) + " |")
print("|---" * (len(RUNTIMES) + 1) + "|")
for g in groups:
    base = median_ms(g, "runner")
    cells = []
    for r in RUNTIMES:
        m = median_ms(g, r)
        if m is None:
            cells.append("—")
        elif r == "runner" or base is None:
            cells.append(f"{m:.2f} ms")
        else:
            cells.append(f"{m:.2f} ms ({m / base:.2f}×)")
    print(f"| {g} | " + " | ".join(cells) + " |")
