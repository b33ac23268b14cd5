#!/usr/bin/env python3
"""`make soak`: a bounded run of mixed traffic through the `make run` chain, checking that nothing
unexpected happens and that Envoy's memory stays flat.

Starts llm-sim and Envoy with envoy-configs/full-chain.yaml exactly as `make run` does
(scripts/aigw_gateway.py), then SOAK_CLIENTS threads (default 8) send requests for SOAK_SECONDS
(default 600): OpenAI- and Anthropic-format requests for models of every simulated provider
(OpenAI, Anthropic, Bedrock, Gemini, Azure OpenAI, Vertex), streaming and not; expected errors
(provider 429 and 500, a provider that drops the connection, an invalid body, an unknown path);
and client disconnects (mid-stream, and before the request body is complete).

Reports Envoy's RSS, tcmalloc's `/memory`, the wasm VMs' linear memory (the read-write part of
each V8 wasm memory reservation in /proc/<pid>/smaps) and every `wasm.*` counter of `/stats` at the
start, the middle and the end. Exit status 1 on any unexpected answer, a wasm failure counter
above zero, a VM created after start (a crashed VM replaced), a wasm failure line in Envoy's log,
or Envoy/llm-sim exiting. Everything started is stopped by pid, also on Ctrl-C.
Report: stdout and bench/.run/soak/report.md.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aigw_gateway as gateway  # noqa: E402

RUN = gateway.REPO_ROOT / "bench" / ".run" / "soak"
SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "8"))
STOP = threading.Event()

OPENAI_MODELS = ["gpt-4o-mini", "claude-haiku-4-5", "bedrock-nova", "gemini-2.0-flash",
                 "azure-gpt-4o", "vertex-flash"]
ANTHROPIC_API_MODELS = ["claude-haiku-4-5", "gpt-4o-mini", "gemini-2.0-flash", "bedrock-nova"]
# Envoy log lines that mean a plugin VM failed (trap, panic, failed callback).
WASM_FAILURE = re.compile(r"(Wasm VM failed|panicked at|wasm trap|Uncaught|"
                          r"Function: \S+ failed|failed to start VM|Plugin configured to fail)",
                          re.IGNORECASE)


def prompt(i: int) -> str:
    return f"Soak request {i}: say something short about gateways. " + "x" * random.randint(0, 600)


class Client:
    """One traffic thread; counts each case's outcome."""

    def __init__(self, port: int, results: Counter, unexpected: list, lock: threading.Lock):
        self.port = port
        self.results = results
        self.unexpected = unexpected
        self.lock = lock
        self.conn: http.client.HTTPConnection | None = None
        self.n = 0

    # -- plumbing

    def http(self, method: str, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(gateway.LOOPBACK, self.port, timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    self.close()
                return resp.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection the gateway closed meanwhile: retry once, fresh.
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def record(self, case: str, ok: bool, detail: str = "") -> None:
        with self.lock:
            self.results[(case, "ok" if ok else "UNEXPECTED")] += 1
            if not ok and len(self.unexpected) < 50:
                self.unexpected.append(f"{case}: {detail[:400]}")

    # -- cases

    def openai(self, stream: bool, model: str) -> None:
        case = f"openai-api {'stream' if stream else 'json'} {model}"
        body = {"model": model, "messages": [{"role": "user", "content": prompt(self.n)}],
                "max_tokens": 64}
        if stream:
            body["stream"] = True
        status, data = self.http("POST", "/v1/chat/completions", json.dumps(body).encode(),
                                 {"content-type": "application/json",
                                  "authorization": "Bearer client-key"})
        text = data.decode("utf-8", "replace")
        if stream:
            ok = status == 200 and "data: [DONE]" in text and "chat.completion.chunk" in text
        else:
            ok = status == 200 and json.loads(text).get("choices", [{}])[0].get(
                "message", {}).get("content") is not None
        self.record(case, ok, f"{status} {text[:300]}")

    def anthropic(self, stream: bool, model: str) -> None:
        case = f"anthropic-api {'stream' if stream else 'json'} {model}"
        body = {"model": model, "max_tokens": 64,
                "messages": [{"role": "user", "content": prompt(self.n)}]}
        if stream:
            body["stream"] = True
        status, data = self.http("POST", "/v1/messages", json.dumps(body).encode(),
                                 {"content-type": "application/json", "x-api-key": "client-key",
                                  "anthropic-version": "2023-06-01"})
        text = data.decode("utf-8", "replace")
        if stream:
            ok = status == 200 and "message_stop" in text
        else:
            ok = status == 200 and json.loads(text).get("type") == "message"
        self.record(case, ok, f"{status} {text[:300]}")

    def provider_error(self, kind: str) -> None:
        """llm-sim answers an error (or drops the connection); the client gets an error status
        in OpenAI's shape."""
        model = random.choice(OPENAI_MODELS)
        headers = {"content-type": "application/json", "authorization": "Bearer client-key"}
        expect = {"429": {429}, "500": {500, 502}, "reset": {502, 503}}[kind]
        if kind == "reset":
            headers["x-sim-reset"] = "1"
        else:
            headers["x-sim-error-status"] = kind
        body = {"model": model, "messages": [{"role": "user", "content": prompt(self.n)}]}
        status, data = self.http("POST", "/v1/chat/completions", json.dumps(body).encode(),
                                 headers)
        text = data.decode("utf-8", "replace")
        ok = status in expect and '"error"' in text
        self.record(f"expected error: provider {kind} ({model.split('-')[0]})", ok,
                    f"{model}: {status} {text[:300]}")

    def client_error(self, kind: str) -> None:
        headers = {"content-type": "application/json", "authorization": "Bearer client-key"}
        if kind == "invalid-json":
            status, data = self.http("POST", "/v1/chat/completions", b'{"model": "gpt-4o-mini", ',
                                     headers)
            expect = {400}
        else:  # unknown path
            status, data = self.http("POST", "/v1/unknown", b"{}", headers)
            expect = {404}
        self.record(f"expected error: {kind}", status in expect,
                    f"{status} {data[:300]!r}")

    def disconnect(self, kind: str) -> None:
        """Open a fresh connection and abandon it: mid-stream (a slow stream, after its first
        bytes) or before the request body is complete."""
        model = random.choice(OPENAI_MODELS)
        body = json.dumps({"model": model, "stream": True, "max_tokens": 200,
                           "messages": [{"role": "user", "content": prompt(self.n)}]}).encode()
        head = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: soak\r\n"
                f"content-type: application/json\r\nauthorization: Bearer client-key\r\n"
                f"x-sim-tokens-per-second: 40\r\ncontent-length: {len(body)}\r\n\r\n").encode()
        sock = socket.create_connection((gateway.LOOPBACK, self.port), timeout=10)
        try:
            if kind == "mid-stream":
                sock.sendall(head + body)
                got = sock.recv(4096)
                ok = got.startswith(b"HTTP/1.1 200")
                detail = got[:200].decode("latin-1")
            else:
                sock.sendall(head + body[: len(body) // 2])
                time.sleep(0.01)
                ok, detail = True, ""
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        finally:
            sock.close()  # with linger 0: a reset, as a killed client would leave
        self.record(f"client disconnect: {kind}", ok, f"{model}: {detail}")

    def one(self) -> None:
        self.n += 1
        r = random.random()
        if r < 0.40:
            self.openai(random.random() < 0.5, random.choice(OPENAI_MODELS))
        elif r < 0.70:
            self.anthropic(random.random() < 0.5, random.choice(ANTHROPIC_API_MODELS))
        elif r < 0.82:
            self.provider_error(random.choice(["429", "500", "reset"]))
        elif r < 0.90:
            self.client_error(random.choice(["invalid-json", "unknown-path"]))
        else:
            self.disconnect(random.choice(["mid-stream", "partial-body"]))

    def run(self) -> None:
        while not STOP.is_set():
            try:
                self.one()
            except Exception as err:  # noqa: BLE001 - every failure is a finding, counted
                self.close()
                self.record("client exception", False, f"{type(err).__name__}: {err}")


# ---------------------------------------------------------------- gateway state


def smaps_wasm(pid: int) -> dict:
    """V8 reserves ≥ 4 GiB of address space per wasm memory and makes its start read-write as
    the memory grows: the rw mapping right before each big PROT_NONE reservation is a VM's
    linear memory. Returns their count, committed size and resident size (KiB)."""
    maps = []
    cur: dict | None = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if parts and not parts[0].endswith(":"):
            start, end = (int(x, 16) for x in parts[0].split("-"))
            cur = {"start": start, "end": end, "perm": parts[1], "rss": 0}
            maps.append(cur)
        elif parts and parts[0] == "Rss:" and cur is not None:
            cur["rss"] = int(parts[1])
    vms = size = rss = 0
    for i, m in enumerate(maps):
        if m["end"] - m["start"] >= 1 << 32 and m["perm"].startswith("---") and i:
            prev = maps[i - 1]
            if prev["end"] == m["start"] and prev["perm"].startswith("rw"):
                vms += 1
                size += (prev["end"] - prev["start"]) >> 10
                rss += prev["rss"]
    return {"vms": vms, "committed_kib": size, "resident_kib": rss}


def snapshot(gw: gateway.Gateway, label: str) -> dict:
    pid = gw.envoy.pid
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    memory = json.loads(gateway.http_get(f"{gw.admin_url}/memory")[1])
    stats = {}
    for line in gateway.http_get(f"{gw.admin_url}/stats")[1].splitlines():
        name, _, value = line.partition(": ")
        if (name.startswith("wasm.") or name in ("http.llm.downstream_rq_completed",
                                                  "http.llm.downstream_cx_total")) \
                and value.strip().isdigit():
            stats[name] = int(value)
    return {"label": label, "t": time.monotonic(), "rss_kib": rss,
            "tcmalloc_allocated": int(memory["allocated"]),
            "tcmalloc_heap": int(memory["heap_size"]), "wasm": smaps_wasm(pid), "stats": stats}


def wasm_failures(snap: dict, first: dict) -> list[str]:
    found = []
    for name, value in snap["stats"].items():
        if ("fail" in name or "backoff" in name) and value > 0:
            found.append(f"{name} = {value}")
    created = "wasm.envoy.wasm.runtime.v8.created"
    if snap["stats"].get(created, 0) > first["stats"].get(created, 0):
        found.append(f"{created} went from {first['stats'].get(created)} to "
                     f"{snap['stats'][created]} (a VM was replaced)")
    return found


def report(snaps: list[dict], results: Counter, unexpected: list, failures: list,
           log_failures: list, elapsed: float) -> str:
    total = sum(results.values())
    bad = sum(v for (case, kind), v in results.items() if kind != "ok")
    lines = [f"# `make soak` ({elapsed:.0f} s, {CLIENTS} clients)", "",
             f"{total} requests, {total / max(elapsed, 1):.0f}/s; **{bad} unexpected**; "
             f"wasm failure counters: {', '.join(failures) or 'none'}; wasm failure lines in "
             f"Envoy's log: {len(log_failures)}", "",
             "| | Envoy RSS MiB | tcmalloc allocated MiB | tcmalloc heap MiB | wasm VMs "
             "| wasm linear memory KiB (committed / resident) | requests completed |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for s in snaps:
        lines.append(f"| {s['label']} | {s['rss_kib'] / 1024:.1f} | "
                     f"{s['tcmalloc_allocated'] / 2**20:.1f} | {s['tcmalloc_heap'] / 2**20:.1f} | "
                     f"{s['wasm']['vms']} | {s['wasm']['committed_kib']} / "
                     f"{s['wasm']['resident_kib']} | "
                     f"{s['stats'].get('http.llm.downstream_rq_completed', 0)} |")
    lines += ["", "wasm counters at the end: " + ", ".join(
        f"`{k}` {v}" for k, v in sorted(snaps[-1]["stats"].items()) if k.startswith("wasm.")), "",
        "| case | ok | unexpected |", "|---|---:|---:|"]
    for case in sorted({c for c, _ in results}):
        lines.append(f"| {case} | {results[(case, 'ok')]} | {results[(case, 'UNEXPECTED')]} |")
    if unexpected:
        lines += ["", "First unexpected answers:", ""] + [f"- {u}" for u in unexpected[:20]]
    if log_failures:
        lines += ["", "wasm failure lines in Envoy's log:", ""] + \
                 [f"- `{ln[:300]}`" for ln in log_failures[:20]]
    return "\n".join(lines) + "\n"


def main() -> int:
    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_term)
    gw = gateway.Gateway(gateway.ENVOY_CONFIGS / "full-chain.yaml", RUN)
    results: Counter = Counter()
    unexpected: list[str] = []
    lock = threading.Lock()
    threads: list[threading.Thread] = []
    snaps: list[dict] = []
    status = 0
    try:
        gw.start()
        print(f"soak: Envoy pid {gw.envoy.pid} on {gw.base_url}, llm-sim pid {gw.sim.pid}; "
              f"{SECONDS} s with {CLIENTS} clients", flush=True)
        snaps.append(snapshot(gw, "start (before traffic)"))
        clients = [Client(gw.listen_port, results, unexpected, lock) for _ in range(CLIENTS)]
        threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        took_middle = False
        while time.monotonic() - t0 < SECONDS:
            time.sleep(min(10.0, max(0.1, SECONDS - (time.monotonic() - t0))))
            for proc in (gw.envoy, gw.sim):
                if not proc.running():
                    raise gateway.GatewayError(f"{proc.name} exited:\n{proc.log_tail()}")
            if not took_middle and time.monotonic() - t0 >= SECONDS / 2:
                snaps.append(snapshot(gw, "middle"))
                took_middle = True
            done = sum(results.values())
            bad = sum(v for (_, k), v in results.items() if k != "ok")
            print(f"soak: {time.monotonic() - t0:5.0f} s  {done} requests  {bad} unexpected  "
                  f"Envoy RSS {snapshot_rss(gw.envoy.pid) / 1024:.1f} MiB", flush=True)
        STOP.set()
        for t in threads:
            t.join(timeout=40)
        for c in clients:
            c.close()
        time.sleep(0.5)
        snaps.append(snapshot(gw, "end"))
        elapsed = time.monotonic() - t0
    except KeyboardInterrupt:
        print("soak: interrupted; stopping everything", file=sys.stderr)
        return 130
    except gateway.GatewayError as err:
        print(f"soak: {err}", file=sys.stderr)
        return 1
    finally:
        STOP.set()
        gw.stop()
    log_failures = [ln for ln in (RUN / "envoy.log").read_text(errors="replace").splitlines()
                    if WASM_FAILURE.search(ln)]
    failures = wasm_failures(snaps[-1], snaps[0])
    text = report(snaps, results, unexpected, failures, log_failures, elapsed)
    (RUN / "report.md").write_text(text, encoding="utf-8")
    print(text)
    bad = sum(v for (_, k), v in results.items() if k != "ok")
    if bad or failures or log_failures or not results:
        print("soak: FAILED", file=sys.stderr)
        status = 1
    else:
        print(f"soak: ok (report in {(RUN / 'report.md').relative_to(gateway.REPO_ROOT)})")
    return status


def snapshot_rss(pid: int) -> int:
    m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) if m else 0


if __name__ == "__main__":
    sys.exit(main())
