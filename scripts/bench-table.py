#!/usr/bin/env python3
"""Print criterion medians of the last `cargo bench` run as a Markdown table
with each runtime's time relative to runner's (ratio > 1: runner is faster).

Usage: python3 scripts/bench-table.py [GROUP ...]
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
RUNTIMES = ["runner", "runner_debug_on", "tokio_current_thread", "tokio_local_set", "smol", "futures_localpool", "floor_bare_executor"]
groups = sys.argv[1:] or [
    "spawn_join_100k",
    "spawn_join_ready_100k",
    "yield_1m",
    "yield_100x10k",
    "ping_pong_100k",
    "ping_pong_channel_100k",
    "ping_pong_channel_main_100k",
    "timers_10k",
    "sleep_1ms_x50",
    "timeouts_100k",
    "run_fresh_10k",
    "run_reused_10k",
]


def median_ms(group, runtime):
    f = ROOT / group / runtime / "new" / "estimates.json"
    if not f.exists():
        return None
    return json.loads(f.read_text())["median"]["point_estimate"] / 1e6


def fmt(ms):
    return f"{ms * 1000:.0f} µs" if ms < 1 else f"{ms:.2f} ms"


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
            cells.append(fmt(m))
        else:
            cells.append(f"{fmt(m)} ({m / base:.2f}×)")
    print(f"| {g} | " + " | ".join(cells) + " |")
