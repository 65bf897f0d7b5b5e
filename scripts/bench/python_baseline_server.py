#!/usr/bin/env python3
"""The Python baseline: what people run today to serve OFA visual entailment without a serving stack.

A standard-library HTTP server (``ThreadingHTTPServer``, HTTP/1.1 keep-alive, one thread per connection)
that speaks the KServe v2 JSON protocol for ``ofa_entailment`` (IMAGE as base64 text, HYPOTHESIS, optional
PREMISE -> RESULT, LABEL, SCORES) and, per request, does what a careful user would write:

* base64-decode the image; PIL open, ``ImageOps.exif_transpose``, ``convert("RGB")``, bicubic resize to the
  model's size, ToTensor, Normalize (``ofa.reference.preprocess_image``, the exporter's own code);
* the prompt as the exported metadata states it (``ofa.prompts.meta_input_ids``: ``pre_caption`` with
  ``max_src_length`` word truncation, the template, GPT-2 BPE over the repository's vocab, the id budget);
* one call of the same TorchScript ``model.pt`` on ``--device`` (cpu or cuda) under
  ``torch.inference_mode()``, no batching across requests (a request with batch B runs one forward of B
  rows); softmax over the 3 answer logits.

It is written to be fair, not slow: the module is loaded once, connections are kept alive, and each request
runs on its own thread with one intra-op thread (parallelism across requests; on a busy 2-core box a forward
with 2 OpenMP threads measured 20-50x slower than with 1, docs/PERFORMANCE.md), inter-op threads 1. It has no queue, no dynamic batching and no
statistics endpoint: it is the simpler of the two Python baselines (docs/PERFORMANCE.md);
``python_batching_server.py`` is the one with asyncio and a dynamic-batching queue, and reuses this file's
model and protocol code.

Usage: /usr/bin/python3 scripts/bench/python_baseline_server.py --model-repository REPO [--port 8010] [--device cuda]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # scripts/, for the ofa package
from ofa.bpe import BPE  # noqa: E402
from ofa.prompts import meta_input_ids  # noqa: E402
from ofa.reference import preprocess_image  # noqa: E402

MAX_BODY = 64 << 20


class BadRequest(Exception):
    """A client error: answered with 400 and {"error": message}."""


class Model:
    """The exported ofa_entailment version directory: meta, tokenizer and TorchScript module."""

    def __init__(self, repo: str, name: str = "ofa_entailment", version: str = "1", device: str = "cpu") -> None:
        self.name, self.version, self.device = name, version, torch.device(device)
        vdir = os.path.join(repo, name, version)
        with open(os.path.join(vdir, "ofa_meta.json"), "r", encoding="utf-8") as f:
            self.meta: Dict[str, Any] = json.load(f)
        self.bpe = BPE.from_files(os.path.join(vdir, self.meta["vocab_file"]), os.path.join(vdir, self.meta["merges_file"]))
        self.module = torch.jit.load(os.path.join(vdir, self.meta.get("model_file", "model.pt")), map_location=self.device)
        self.module.eval()
        self.max_batch_size = int(self.meta.get("max_batch_size", 16))
        cfg = os.path.join(repo, name, "config.pbtxt")
        if os.path.exists(cfg):
            with open(cfg, "r", encoding="utf-8") as f:
                m = re.search(r"max_batch_size\s*:\s*(\d+)", f.read())
            if m:
                self.max_batch_size = int(m.group(1))

    def metadata(self) -> Dict[str, Any]:
        b = [-1, 1]
        return {
            "name": self.name, "versions": [self.version], "platform": "python_baseline",
            "inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": b},
                       {"name": "HYPOTHESIS", "datatype": "BYTES", "shape": b},
                       {"name": "PREMISE", "datatype": "BYTES", "shape": b}],
            "outputs": [{"name": "RESULT", "datatype": "BYTES", "shape": b},
                        {"name": "LABEL", "datatype": "BYTES", "shape": b},
                        {"name": "SCORES", "datatype": "FP32", "shape": [-1, 3]}],
        }

    def preprocess(self, images: Sequence[bytes], hyps: Sequence[str],
                   premises: Optional[Sequence[str]]) -> Tuple[torch.Tensor, List[List[int]]]:
        """PIL preprocessing and the prompt ids of one request: (float32 [n,3,H,W] on the CPU, id rows)."""
        h, w = self.meta["image_size"]
        pixels = []
        for i, img in enumerate(images):
            try:
                pixels.append(preprocess_image(img, h, w, self.meta["mean"], self.meta["std"]))
            except Exception as e:  # PIL raises many types for bad files
                raise BadRequest(f"IMAGE[{i}] is not a decodable image: {e}") from e
        rows: List[List[int]] = []
        for i, hyp in enumerate(hyps):
            prem = premises[i] if premises is not None and premises[i] != "" else None
            rows.append(meta_input_ids(self.bpe, self.meta, hyp, prem))
        return torch.stack(pixels), rows

    def forward(self, pixels: torch.Tensor, rows: Sequence[Sequence[int]]) -> List[List[float]]:
        """One forward of the module on its device over images and id rows (right-padded with pad_id):
        each row's softmax over the three answers, computed in float64."""
        ids = torch.full((len(rows), max(len(r) for r in rows)), self.meta["pad_id"], dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        with torch.inference_mode():
            logits = self.module(pixels.to(self.device), ids.to(self.device)).float()
            return torch.softmax(logits.double(), dim=-1).cpu().tolist()

    def results(self, probs: Sequence[Sequence[float]]) -> List[Dict[str, Any]]:
        labels = self.meta["labels"]
        out = []
        for row in probs:
            best = max(range(3), key=lambda k: row[k])
            out.append({"label": labels[best], "confidence": row[best],
                        "all_scores": {labels[k]: row[k] for k in range(3)}, "scores": list(row)})
        return out

    def infer(self, images: Sequence[bytes], hyps: Sequence[str], premises: Optional[Sequence[str]]) -> List[Dict[str, Any]]:
        pixels, rows = self.preprocess(images, hyps, premises)
        return self.results(self.forward(pixels, rows))


def _bytes_input(inp: Dict[str, Any], b64: bool) -> List[bytes]:
    name = inp.get("name")
    data = inp.get("data")
    if "parameters" in inp and "binary_data_size" in (inp.get("parameters") or {}):
        raise BadRequest(f"input '{name}': the binary tensor extension is not supported by this server")
    if inp.get("datatype") != "BYTES":
        raise BadRequest(f"input '{name}' data-type is '{inp.get('datatype')}', but the model expects 'BYTES'")
    if not isinstance(data, list):
        raise BadRequest(f"input '{name}' has no 'data' array")
    flat: List[Any] = []

    def walk(x: Any, depth: int) -> None:
        if depth > 100:
            raise BadRequest("JSON nesting depth exceeds maximum allowed limit (100)")
        if isinstance(x, list):
            for y in x:
                walk(y, depth + 1)
        elif isinstance(x, str):
            flat.append(x)
        else:
            raise BadRequest(f"input '{name}': BYTES elements must be JSON strings")

    walk(data, 0)
    shape = inp.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise BadRequest(f"input '{name}': bad shape {shape!r}")
    n = 1
    for d in shape:
        n *= d
    if n != len(flat):
        raise BadRequest(f"unexpected number of string elements {len(flat)} for inference input '{name}', expecting {n}")
    if b64:
        try:
            return [base64.b64decode(s, validate=True) for s in flat]
        except (binascii.Error, ValueError) as e:
            raise BadRequest(f"input '{name}' is not valid base64: {e}") from e
    return [s.encode("utf-8") for s in flat]


class Parsed:
    """A decoded KServe v2 JSON request for ofa_entailment."""

    def __init__(self, req: Dict[str, Any], images: List[bytes], hyps: List[str], premises: Optional[List[str]]) -> None:
        self.req, self.images, self.hyps, self.premises = req, images, hyps, premises


def parse_infer(model: Model, body: bytes) -> Parsed:
    """Decodes and checks a KServe v2 JSON request (BadRequest says what is wrong)."""
    try:
        req = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"failed to parse the request JSON buffer: {e}") from e
    if not isinstance(req, dict) or not isinstance(req.get("inputs"), list):
        raise BadRequest("request must be a JSON object with an 'inputs' array")
    inputs: Dict[str, Dict[str, Any]] = {}
    for inp in req["inputs"]:
        if not isinstance(inp, dict) or not isinstance(inp.get("name"), str):
            raise BadRequest("every input needs a 'name'")
        if inp["name"] in inputs:
            raise BadRequest(f"input '{inp['name']}' already exists in request")
        if inp["name"] not in ("IMAGE", "HYPOTHESIS", "PREMISE"):
            raise BadRequest(f"unexpected inference input '{inp['name']}' for model '{model.name}'")
        inputs[inp["name"]] = inp
    missing = [n for n in ("IMAGE", "HYPOTHESIS") if n not in inputs]
    if missing:
        raise BadRequest(f"missing required input(s) {missing} for model '{model.name}'")
    images = _bytes_input(inputs["IMAGE"], b64=True)
    hyps = [h.decode("utf-8", "replace") for h in _bytes_input(inputs["HYPOTHESIS"], b64=False)]
    prem = None
    if "PREMISE" in inputs:
        prem = [p.decode("utf-8", "replace") for p in _bytes_input(inputs["PREMISE"], b64=False)]
    if len(hyps) != len(images) or (prem is not None and len(prem) != len(images)):
        raise BadRequest("inputs IMAGE, HYPOTHESIS and PREMISE must have the same batch size")
    if not 1 <= len(images) <= max(1, model.max_batch_size):
        raise BadRequest(f"inference request batch-size must be <= {model.max_batch_size} for '{model.name}'")
    wanted = req.get("outputs")
    if isinstance(wanted, list) and wanted:
        names = [o.get("name") for o in wanted if isinstance(o, dict)]
        unknown = [n for n in names if n not in ("RESULT", "LABEL", "SCORES")]
        if unknown:
            raise BadRequest(f"unexpected inference output '{unknown[0]}' for model '{model.name}'")
    return Parsed(req, images, hyps, prem)


def make_response(model: Model, req: Dict[str, Any], results: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The KServe v2 response document for a request's results."""
    b = len(results)
    resp: Dict[str, Any] = {
        "model_name": model.name, "model_version": model.version,
        "outputs": [
            {"name": "RESULT", "datatype": "BYTES", "shape": [b, 1],
             "data": [json.dumps({k: r[k] for k in ("label", "confidence", "all_scores")}) for r in results]},
            {"name": "LABEL", "datatype": "BYTES", "shape": [b, 1], "data": [r["label"] for r in results]},
            {"name": "SCORES", "datatype": "FP32", "shape": [b, 3], "data": [s for r in results for s in r["scores"]]},
        ],
    }
    if isinstance(req.get("id"), str) and req["id"]:
        resp["id"] = req["id"]
    wanted = req.get("outputs")
    if isinstance(wanted, list) and wanted:
        names = [o.get("name") for o in wanted if isinstance(o, dict)]
        resp["outputs"] = [o for o in resp["outputs"] if o["name"] in names]
    return resp


def handle_infer(model: Model, body: bytes) -> Dict[str, Any]:
    """Decodes a KServe v2 JSON request, runs it, and returns the response document."""
    p = parse_infer(model, body)
    return make_response(model, p.req, model.infer(p.images, p.hyps, p.premises))


def make_handler(model: Model) -> type:
    prefix = f"/v2/models/{model.name}"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: logging per request costs time
            pass

        def _send(self, code: int, doc: Optional[Dict[str, Any]]) -> None:
            body = b"" if doc is None else json.dumps(doc).encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _path(self) -> str:
            return self.path.split("?", 1)[0].replace(f"/versions/{model.version}", "")

        def do_GET(self) -> None:
            p = self._path()
            if p in ("/v2/health/live", "/v2/health/ready", prefix + "/ready"):
                self._send(200, None)
            elif p == prefix:
                self._send(200, model.metadata())
            elif p == prefix + "/config":
                self._send(200, {"name": model.name, "max_batch_size": model.max_batch_size})
            else:
                self._send(404, {"error": "Not Found"})

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            if n < 0 or n > MAX_BODY:
                self._send(400, {"error": f"request of {n} bytes exceeds the maximum of {MAX_BODY}"})
                self.close_connection = True
                return
            body = self.rfile.read(n)
            if self._path() != prefix + "/infer":
                self._send(404, {"error": "Not Found"})
                return
            if self.headers.get("Inference-Header-Content-Length") is not None:
                self._send(400, {"error": "the binary tensor extension is not supported by this server"})
                return
            try:
                self._send(200, handle_infer(model, body))
            except BadRequest as e:
                self._send(400, {"error": str(e)})
            except Exception as e:  # never take the server down
                self._send(500, {"error": f"internal error: {e}"})

    return Handler


def serve(model: Model, host: str, port: int) -> ThreadingHTTPServer:
    """Binds the server (port 0 picks a free one); the caller runs serve_forever."""
    srv = ThreadingHTTPServer((host, port), make_handler(model))
    srv.daemon_threads = True
    return srv


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-repository", required=True, help="repository written by scripts/export_ofa.py")
    ap.add_argument("--model", default="ofa_entailment")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8010)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]: where the module runs")
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="intra-op threads per forward (default 1: requests run in parallel on their own threads; "
                         "more threads per request oversubscribe the cores once several requests are in flight)")
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print("python_baseline_server: refusing to listen beyond loopback", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, args.torch_threads))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    model = Model(args.model_repository, args.model, device=args.device)
    srv = serve(model, args.host, args.port)
    print(f"python_baseline_server: {args.model} on http://{args.host}:{srv.server_address[1]} "
          f"(torch {torch.__version__}, {args.device}, {torch.get_num_threads()} threads)", file=sys.stderr, flush=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        t.join()
    except KeyboardInterrupt:
        pass
    srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
