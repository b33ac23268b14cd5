#!/usr/bin/env python3
"""ai-semantic-cache's real parts on 127.0.0.1: the embedding model (scripts/embedder.py,
all-MiniLM-L6-v2 over the OpenAI embeddings API) and Chroma (`chroma run`, telemetry off, data in
a directory of the caller's), each started as an `aigw_gateway.Process` (logs in `workdir`,
stopped by its pid, SIGTERMed by Linux if the starter dies).

Used by tests/e2e/test_semantic_cache.py and `make run`; the ports they listen on are the
`EMBEDDER_PORT` and `VECTOR_STORE_PORT` placeholders of envoy-configs/ (see its README).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import aigw_gateway as gateway  # noqa: E402

SCRIPTS = Path(__file__).resolve().parent


def _venv_bin(name: str) -> Path:
    """A program of the interpreter's environment (the project's .venv under `make`)."""
    return Path(sys.executable).parent / name


def start_embedder(workdir: Path) -> tuple[gateway.Process, int]:
    """Start scripts/embedder.py on a kernel-chosen port; returns it once /health answers."""
    port_file = workdir / "embedder.port"
    port_file.unlink(missing_ok=True)
    argv = [sys.executable, SCRIPTS / "embedder.py", "--port", "0", "--port-file", port_file]
    proc = gateway.Process("embedder", argv, workdir / "embedder.log")
    try:
        gateway.wait_until("writing its port file", lambda: port_file.read_text().strip().isdigit(),
                           proc, 60.0)
        port = int(port_file.read_text().strip())
        health = f"http://{gateway.LOOPBACK}:{port}/health"
        gateway.wait_until("answering /health", lambda: gateway.http_get(health)[0] == 200, proc, 30.0)
    except BaseException:
        proc.stop()
        raise
    return proc, port


def start_chroma(workdir: Path) -> tuple[gateway.Process, int]:
    """Start `chroma run` with its data under `workdir`; returns it once its heartbeat answers."""
    chroma = _venv_bin("chroma")
    if not chroma.exists():
        raise gateway.GatewayError(f"{chroma} is missing: run `make deps` (chromadb)")
    for _ in range(3):
        port = gateway.free_ports(1)[0]
        argv = [chroma, "run", "--host", gateway.LOOPBACK, "--port", str(port),
                "--path", workdir / "chroma-data"]
        os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
        proc = gateway.Process("chroma", argv, workdir / "chroma.log")
        beat = f"http://{gateway.LOOPBACK}:{port}/api/v2/heartbeat"
        try:
            gateway.wait_until("answering its heartbeat", lambda: gateway.http_get(beat)[0] == 200,
                               proc, 60.0)
            return proc, port
        except gateway.GatewayError:
            clash = "in use" in proc.log_tail(20000).lower()
            proc.stop()
            if not clash:
                raise
    raise gateway.GatewayError("chroma: no free port after 3 tries")


def run_chroma_child(argv: list[str]) -> int:
    """`semantic_services.py chroma ARGS...`: run `chroma ARGS...` so that it dies with whoever
    started this wrapper (Linux parent-death signal on both), passing SIGTERM on. For starters
    that cannot set the signal themselves (the Rust harness tests)."""
    import signal
    import subprocess

    gateway._die_with_parent()
    child = subprocess.Popen([str(_venv_bin("chroma")), *argv], stdin=subprocess.DEVNULL,
                             preexec_fn=gateway._die_with_parent)
    signal.signal(signal.SIGTERM, lambda *_: child.terminate())
    return child.wait()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "chroma":
        os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
        sys.exit(run_chroma_child(sys.argv[2:]))
    print("usage: semantic_services.py chroma ARGS... (see the module doc)", file=sys.stderr)
    sys.exit(2)
