"""The static upstream of `make bench`: nginx (Debian, with its Lua module) answering fixed
OpenAI and Anthropic responses, JSON or SSE, as fast as it can.

`/v1/messages` gets Anthropic's shapes, every other path OpenAI's; a request body containing
`"stream": true` gets the SSE variant (~20 events, sent in one write, chunked), otherwise the JSON
body (with content-length). One nginx worker, keep-alive without a request limit, no access log.
Standard library only; used by scripts/bench.py.
"""

from __future__ import annotations

import json
from pathlib import Path

NGINX_MODULES = Path("/usr/lib/nginx/modules")

WORDS = ("The quick brown fox jumps over the lazy dog while the gateway keeps counting tokens "
         "and nothing else happens here").split()


def _deltas(count: int = 20) -> list[str]:
    """`count` small text pieces, like a model's tokens."""
    return [(" " if i else "") + WORDS[i % len(WORDS)] for i in range(count)]


def openai_json() -> str:
    """A chat.completion answer."""
    return json.dumps({
        "id": "chatcmpl-bench0001", "object": "chat.completion", "created": 1764700000,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": "".join(_deltas()),
                                 "refusal": None}}],
        "usage": {"prompt_tokens": 230, "completion_tokens": 20, "total_tokens": 250},
    }, separators=(",", ":"))


def openai_sse() -> str:
    """A chat.completion.chunk stream: role, 20 content deltas, finish, usage, [DONE]."""
    base = {"id": "chatcmpl-bench0001", "object": "chat.completion.chunk", "created": 1764700000,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_bench"}

    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None,
              choices: bool = True) -> str:
        body = dict(base)
        body["choices"] = ([{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish}] if choices else [])
        if usage is not None:
            body["usage"] = usage
        return "data: " + json.dumps(body, separators=(",", ":")) + "\n\n"

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": piece}) for piece in _deltas()]
    events.append(chunk({}, finish="stop"))
    events.append(chunk({}, usage={"prompt_tokens": 230, "completion_tokens": 20,
                                   "total_tokens": 250}, choices=False))
    events.append("data: [DONE]\n\n")
    return "".join(events)


def anthropic_json() -> str:
    """A Messages API answer."""
    return json.dumps({
        "id": "msg_bench0001", "type": "message", "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": "".join(_deltas())}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 230, "output_tokens": 20},
    }, separators=(",", ":"))


def anthropic_sse() -> str:
    """A Messages API stream: message_start, one text block with 20 deltas, message_delta/stop."""
    def event(name: str, data: dict) -> str:
        return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"

    events = [event("message_start", {"type": "message_start", "message": {
        "id": "msg_bench0001", "type": "message", "role": "assistant", "content": [],
        "model": "claude-haiku-4-5-20251001", "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 230, "output_tokens": 1}}}),
        event("content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}}),
        event("ping", {"type": "ping"})]
    events += [event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": piece}})
               for piece in _deltas()]
    events += [event("content_block_stop", {"type": "content_block_stop", "index": 0}),
               event("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                       "usage": {"output_tokens": 20}}),
               event("message_stop", {"type": "message_stop"})]
    return "".join(events)


BODIES = {
    "openai_json": openai_json,
    "openai_sse": openai_sse,
    "anthropic_json": anthropic_json,
    "anthropic_sse": anthropic_sse,
}

NGINX_CONF = """\
# Rendered by scripts/bench_upstream.py for `make bench`; do not edit.
load_module {modules}/ndk_http_module.so;
load_module {modules}/ngx_http_lua_module.so;
daemon off;
master_process on;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {run}/nginx-body;
    proxy_temp_path {run}/nginx-proxy;
    fastcgi_temp_path {run}/nginx-fastcgi;
    uwsgi_temp_path {run}/nginx-uwsgi;
    scgi_temp_path {run}/nginx-scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_buffer_size 1m;
    client_max_body_size 32m;
    lua_code_cache on;
    init_by_lua_block {{
        local function slurp(name)
            local f = assert(io.open("{run}/" .. name, "rb"))
            local data = f:read("*a")
            f:close()
            return data
        end
        BENCH = {{}}
        for _, name in ipairs({{"openai_json", "openai_sse", "anthropic_json", "anthropic_sse"}}) do
            BENCH[name] = slurp(name .. ".body")
        end
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096 reuseport;
        location / {{
            content_by_lua_block {{
                ngx.req.read_body()
                local req = ngx.req.get_body_data() or ""
                local stream = string.find(req, '"stream"%s*:%s*true') ~= nil
                local kind = string.find(ngx.var.uri, "/v1/messages", 1, true) and "anthropic" or "openai"
                local body
                if stream then
                    body = BENCH[kind .. "_sse"]
                    ngx.header["Content-Type"] = "text/event-stream"
                    ngx.header["Cache-Control"] = "no-cache"
                else
                    body = BENCH[kind .. "_json"]
                    ngx.header["Content-Type"] = "application/json"
                    ngx.header["Content-Length"] = #body
                end
                ngx.print(body)
            }}
        }}
    }}
}}
"""


def write_config(run: Path, port: int) -> Path:
    """Write the response bodies and nginx.conf into `run`; returns the config's path."""
    run.mkdir(parents=True, exist_ok=True)
    for name, make in BODIES.items():
        (run / f"{name}.body").write_text(make(), encoding="utf-8")
    for sub in ("nginx-body", "nginx-proxy", "nginx-fastcgi", "nginx-uwsgi", "nginx-scgi"):
        (run / sub).mkdir(exist_ok=True)
    conf = run / "nginx.conf"
    conf.write_text(NGINX_CONF.format(modules=NGINX_MODULES, run=run.as_posix(), port=port),
                    encoding="utf-8")
    return conf


def argv(run: Path, conf: Path) -> list[str]:
    """The nginx command line (foreground, prefix and error log in `run`)."""
    return ["nginx", "-p", f"{run.as_posix()}/", "-e", f"{run.as_posix()}/nginx-error.log",
            "-c", conf.as_posix()]
