"""Independent reference reading of the provider samples for shared/tests/core_llm.rs.

Run from this folder: python3 make_expected.py > expected.json
It reads ../../../testdata/providers/ with Python's json module (no code shared with the Rust
observer) and writes what the observer must report for each sample.
"""
import json
import os

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../testdata/providers")

OPENAI_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
                 "function_call": "tool_calls", "content_filter": "content_filter"}
ANTHROPIC_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                    "tool_use": "tool_calls", "refusal": "content_filter"}

CASES = [
    ("openai-chat.response.json", "chat_completions"),
    ("openai-chat-tools.response.json", "chat_completions"),
    ("openai-chat-stream.sse", "chat_completions"),
    ("openai-chat-stream-usage.sse", "chat_completions"),
    ("openai-chat-stream-toolcalls-usage.sse", "chat_completions"),
    ("openai-chat-error-400.response.json", "chat_completions"),
    ("openai-chat-error-404.response.json", "chat_completions"),
    ("openai-embeddings.response.json", "embeddings"),
    ("openai-embeddings-base64.response.json", "embeddings"),
    ("openai-embeddings-error-400.response.json", "embeddings"),
    ("azure-openai-chat.response.json", "chat_completions"),
    ("vllm-openai-chat.response.json", "chat_completions"),
    ("ollama-openai-chat.response.json", "chat_completions"),
    ("anthropic-messages-tooluse.response.json", "messages"),
    ("anthropic-messages-toolresult.response.json", "messages"),
    ("anthropic-messages-stream.sse", "messages"),
    ("anthropic-messages-stream-tooluse.sse", "messages"),
    ("anthropic-messages-stream-tooluse-sdkfixture.sse", "messages"),
    ("anthropic-error-400.response.json", "messages"),
    ("anthropic-error-429.response.json", "messages"),
]


def blank():
    return {"id": None, "model": None, "content": "", "reasoning": "", "tool_names": "",
            "tool_args": "", "finish_raw": None, "finish": None, "usage": None,
            "completed": False, "truncated": False, "error_type": None}


def sse_datas(text):
    text = text.replace("\r\n", "\n")
    truncated = not text.endswith("\n\n")
    out = []
    for block in text.split("\n\n"):
        lines = [l[5:].lstrip(" ") if l.startswith("data:") else None for l in block.split("\n")]
        data = [l for l in lines if l is not None]
        if data:
            out.append("\n".join(data))
    return out, truncated


def openai_usage(u):
    if not u:
        return None
    inp, out = u.get("prompt_tokens") or 0, u.get("completion_tokens") or 0
    return {"input": int(inp), "output": int(out), "total": int(u.get("total_tokens", inp + out)),
            "cached": ((u.get("prompt_tokens_details") or {}).get("cached_tokens")),
            "cache_creation": None,
            "reasoning": ((u.get("completion_tokens_details") or {}).get("reasoning_tokens"))}


def openai_apply(e, r):
    e["id"] = e["id"] or r.get("id")
    e["model"] = e["model"] or r.get("model")
    if r.get("error"):
        e["error_type"] = r["error"].get("type")
    for c in r.get("choices") or []:
        m = c.get("delta") or c.get("message") or {}
        e["reasoning"] += (m.get("reasoning_content") or "") + (m.get("reasoning") or "")
        e["content"] += (m.get("content") or "") + (c.get("text") or "")
        for tc in m.get("tool_calls") or []:
            f = tc.get("function") or {}
            e["tool_names"] += f.get("name") or ""
            e["tool_args"] += f.get("arguments") or ""
        if c.get("finish_reason"):
            e["finish_raw"] = c["finish_reason"]
            e["finish"] = OPENAI_FINISH.get(c["finish_reason"], "other")
    if r.get("usage"):
        e["usage"] = openai_usage(r["usage"])


def anthropic_usage(acc):
    inp = (acc.get("input_tokens") or 0) + (acc.get("cache_read_input_tokens") or 0) + (acc.get("cache_creation_input_tokens") or 0)
    out = acc.get("output_tokens") or 0
    return {"input": inp, "output": out, "total": inp + out, "cached": acc.get("cache_read_input_tokens"),
            "cache_creation": acc.get("cache_creation_input_tokens"), "reasoning": None}


def anthropic_block(e, b, full):
    e["content"] += b.get("text") or ""
    e["reasoning"] += b.get("thinking") or ""
    e["tool_names"] += b.get("name") or ""
    e["tool_args"] += b.get("partial_json") or ""
    if full and "input" in b:
        e["tool_args"] = None  # raw JSON text; not compared


def expected(name, api):
    e = blank()
    raw = open(os.path.join(SRC, name), encoding="utf-8").read()
    acc = {}
    if name.endswith(".sse"):
        datas, e["truncated"] = sse_datas(raw)
        for d in datas:
            if api != "messages":
                if d.strip() == "[DONE]":
                    e["completed"] = True
                else:
                    openai_apply(e, json.loads(d))
                continue
            ev = json.loads(d)
            t = ev.get("type")
            if t == "message_start":
                m = ev["message"]
                e["id"], e["model"] = m.get("id"), m.get("model")
                acc.update({k: v for k, v in (m.get("usage") or {}).items() if isinstance(v, int)})
            elif t in ("content_block_start", "content_block_delta"):
                anthropic_block(e, ev.get("content_block") or ev.get("delta") or {}, False)
            elif t == "message_delta":
                sr = (ev.get("delta") or {}).get("stop_reason")
                if sr:
                    e["finish_raw"], e["finish"] = sr, ANTHROPIC_FINISH.get(sr, "other")
                acc.update({k: v for k, v in (ev.get("usage") or {}).items() if isinstance(v, int)})
            elif t == "message_stop":
                e["completed"] = True
        if acc:
            e["usage"] = anthropic_usage(acc)
        return e
    body = json.loads(raw)
    if api != "messages":
        openai_apply(e, body)
    else:
        if body.get("type") == "error":
            e["error_type"] = body["error"]["type"]
        e["id"], e["model"] = body.get("id"), body.get("model")
        for b in body.get("content") or []:
            anthropic_block(e, b, True)
        if body.get("stop_reason"):
            e["finish_raw"] = body["stop_reason"]
            e["finish"] = ANTHROPIC_FINISH.get(body["stop_reason"], "other")
        if body.get("usage"):
            e["usage"] = anthropic_usage({k: v for k, v in body["usage"].items() if isinstance(v, int)})
    e["completed"] = e["error_type"] is None
    return e


print(json.dumps({name: dict(api=api, **expected(name, api)) for name, api in CASES}, indent=1, ensure_ascii=False))
