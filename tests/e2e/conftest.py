"""Fixtures for the real-gateway tests: llm-sim and Envoy with a rendered envoy-configs/ template.

Each test module that needs a gateway asks for one through `gateway_for(<template name>)`; the
gateway starts once per module and is stopped by pid in teardown, also when a test or the start
fails. Envoy and llm-sim logs live in pytest's tmp dir and are attached to every failing test's
report. At the end of the session any process still running is stopped and reported as a leak.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import aigw_gateway as gateway  # noqa: E402

# Never send loopback traffic through a proxy from the environment.
os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
os.environ["no_proxy"] = os.environ["NO_PROXY"]

_STARTED: list[gateway.Gateway] = []


def start_gateway(template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    """Start llm-sim and Envoy for `envoy-configs/<template>`, yield it, always stop it."""
    workdir = tmp_path_factory.mktemp(Path(template).stem)
    gw = gateway.Gateway(gateway.ENVOY_CONFIGS / template, workdir)
    _STARTED.append(gw)
    try:
        gw.start()
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def decorator_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[gateway.Gateway]:
    """Envoy with ai-prompt-decorator alone (envoy-configs/ai-prompt-decorator.yaml)."""
    yield from start_gateway("ai-prompt-decorator.yaml", tmp_path_factory)


class Sim:
    """llm-sim's inspection API (`/_sim/requests`)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def requests(self) -> list[dict[str, Any]]:
        """Every request llm-sim received since the last clear, oldest first."""
        status, body = gateway.http_get(f"{self.base_url}/_sim/requests")
        assert status == 200, f"GET /_sim/requests answered {status}: {body}"
        return json.loads(body)

    def only_request(self) -> dict[str, Any]:
        """The one request llm-sim received since the last clear (fails if not exactly one)."""
        seen = self.requests()
        assert len(seen) == 1, f"llm-sim received {len(seen)} requests: {seen}"
        return seen[0]

    def clear(self) -> None:
        """Forget the requests received so far."""
        req = urllib.request.Request(f"{self.base_url}/_sim/requests", method="DELETE")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=5) as resp:
            assert resp.status in (200, 204)


@pytest.fixture(scope="module")
def sim(decorator_gateway: gateway.Gateway) -> Sim:
    """The llm-sim behind `decorator_gateway`."""
    return Sim(decorator_gateway.sim_url)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach Envoy's and llm-sim's logs to the report of a failing test."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, gateway.Gateway):
            report.sections.append(("gateway logs", value.logs()))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop (and complain about) any gateway process a fixture failed to stop."""
    leaked = []
    for gw in _STARTED:
        for proc in (gw.envoy, gw.sim):
            if proc is not None and proc.running():
                leaked.append(f"{proc.name} pid {proc.pid}")
                proc.stop()
    if leaked:
        print(f"\nstopped leaked processes: {', '.join(leaked)}", file=sys.stderr)
        session.exitstatus = 1
