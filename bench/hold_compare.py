#!/usr/bin/env python3
"""Envoy CPU per request of holding the request headers until the body is complete, with no host
call and no guest work: bare Envoy, bench/empty-filter, bench/hold-filter (headers held, as
ai-proxy does) and bench/hold-filter built with `buffer-only` (headers go on, body buffered, as
ai-prompt-decorator does). Reuses scripts/bench.py's processes and wrk run; results in
bench/.run/hold/ (not committed). Written for bench/profile.md.

    CARGO_TARGET_DIR=target/bench-hold cargo build --release --target wasm32-wasip1 \
        --manifest-path bench/hold-filter/Cargo.toml   # copy the .wasm to target/bench-hold/hold/
    ... --features buffer-only                         # copy to target/bench-hold/buffer/
    python3 bench/hold_compare.py [rounds] [seconds]
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import bench  # noqa: E402  (scripts/bench.py)

bench.RUN = REPO / "bench" / ".run" / "hold"
TB = REPO / "target" / "bench-hold"
ONE = bench.BENCH / "configs" / "one-wasm.yaml"
HOLD = bench.BENCH / "configs" / "one-wasm-hold.yaml"

TARGETS = [
    bench.Target("bare", "bare Envoy", template=bench.BENCH / "configs" / "bare.yaml"),
    bench.Target("empty", "empty filter", template=ONE,
                 values={"WASM_FILE": bench.EMPTY_FILTER_WASM.as_posix(), "WASM_CONFIG": ""}),
    bench.Target("hold", "empty filter holding the request headers until the body",
                 template=HOLD, values={"WASM_FILE": (TB / "hold" / "aigw_bench_hold_filter.wasm")
                                        .as_posix(), "WASM_CONFIG": ""}),
    bench.Target("buffer", "empty filter buffering the request body (headers go on)",
                 template=HOLD, values={"WASM_FILE": (TB / "buffer" / "aigw_bench_hold_filter.wasm")
                                        .as_posix(), "WASM_CONFIG": ""}),
]


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    bench.RUN.mkdir(parents=True, exist_ok=True)
    b = bench.Bench()
    cpu: dict[tuple[str, str], list[float]] = {}
    try:
        b.start_upstream()
        for t in TARGETS:
            b.start_envoy(t)
            for stream in (False, True):
                b.sanity(t, stream)
        for r in range(rounds):
            order = TARGETS[r % len(TARGETS):] + TARGETS[:r % len(TARGETS)]
            for scenario in ("chat", "stream"):
                for t in order:
                    b.wrk_run(t, scenario, 2)
                    res = b.wrk_run(t, scenario, seconds)
                    cpu.setdefault((t.key, scenario), []).append(res["envoy_us_per_req"])
                    print(f"round {r} {scenario:6} {t.key:7} {res['rps']:8.0f} req/s "
                          f"{res['envoy_us_per_req']:6.1f} µs/req errors {res['errors']}",
                          flush=True)
    finally:
        b.stop()
    print("\n| configuration | chat µs/req | +µs vs bare | stream µs/req | +µs vs bare |")
    print("|---|---:|---:|---:|---:|")
    base = {s: statistics.median(cpu[("bare", s)]) for s in ("chat", "stream")}
    for t in TARGETS:
        cells = []
        for s in ("chat", "stream"):
            m = statistics.median(cpu[(t.key, s)])
            cells += [f"{m:.1f}", f"{m - base[s]:+.1f}"]
        print(f"| {t.label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
