#!/usr/bin/env python3
"""The Python baseline users would pick: asyncio HTTP, preprocessing in a thread pool, dynamic batching.

What a careful Python engineer writes to serve OFA visual entailment today, with the pattern BentoML's
adaptive batching and Ray Serve's ``@serve.batch`` use:

* **aiohttp** (asyncio) speaks the KServe v2 JSON protocol for ``ofa_entailment`` (IMAGE as base64 text,
  HYPOTHESIS, optional PREMISE -> RESULT, LABEL, SCORES), the same request and response documents as
  ofaserve and the threaded baseline (``python_baseline_server.py``, whose model and protocol code this
  file reuses);
* **preprocessing in a thread pool** (``--workers``, default the core count): base64, PIL decode + exif +
  bicubic resize + normalize, and the prompt ids (``ofa.prompts.meta_input_ids``) run off the event loop,
  concurrently, in threads (PIL and the tokenizer release the GIL for much of the work);
* **a dynamic-batching queue**: prepared requests wait in an asyncio queue; one batching task takes the
  first, then keeps collecting until the batch holds ``--max-batch-size`` rows (16) or ``--max-delay-ms``
  (5 ms) have passed since that first request, never splitting a request; the batch's images are stacked
  and its id rows right-padded, and **one forward** of the same TorchScript ``model.pt`` runs on
  ``--device`` under ``torch.inference_mode()`` in a dedicated thread, so the event loop keeps accepting
  and the next batch gathers while this one computes; each request's rows of the softmax go back to its
  waiting handler.

A bad request is refused before it is queued (400 with ``{"error": ...}``); a failed forward fails only
its batch (500). GET ``/v2/models/ofa_entailment/stats`` reports the executions and inferences, so the
batching is visible from outside.

Usage: /usr/bin/python3 scripts/bench/python_batching_server.py --model-repository REPO [--port 8011]
       [--device cuda] [--max-batch-size 16] [--max-delay-ms 5] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch
from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from python_baseline_server import MAX_BODY, BadRequest, Model, make_response, parse_infer  # noqa: E402


@dataclass
class Pending:
    """A prepared request waiting for its batch."""

    pixels: torch.Tensor
    rows: List[List[int]]
    future: "asyncio.Future[List[List[float]]]"
    queued: float = field(default_factory=time.monotonic)


class Batcher:
    """Collects prepared requests into batches of at most max_rows rows, waiting at most max_delay seconds
    after a batch's first request, and runs one forward per batch in its own thread."""

    def __init__(self, model: Model, max_rows: int, max_delay: float) -> None:
        self.model, self.max_rows, self.max_delay = model, max(1, max_rows), max(0.0, max_delay)
        self.queue: "asyncio.Queue[Pending]" = asyncio.Queue()
        self.compute = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forward")
        self.executions = 0
        self.inferences = 0
        self.batch_sizes: Dict[int, int] = {}
        self._carry: Optional[Pending] = None
        self._task: Optional["asyncio.Task[None]"] = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.compute.shutdown(wait=True)

    async def submit(self, pixels: torch.Tensor, rows: List[List[int]]) -> List[List[float]]:
        fut: "asyncio.Future[List[List[float]]]" = asyncio.get_running_loop().create_future()
        await self.queue.put(Pending(pixels, rows, fut))
        return await fut

    async def _collect(self) -> List[Pending]:
        first = self._carry if self._carry is not None else await self.queue.get()
        self._carry = None
        batch, rows = [first], len(first.rows)
        deadline = first.queued + self.max_delay
        while rows < self.max_rows:
            timeout = deadline - time.monotonic()
            try:
                nxt = self.queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self.queue.get(), timeout)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if rows + len(nxt.rows) > self.max_rows:
                self._carry = nxt  # never split a request: it starts the next batch
                break
            batch.append(nxt)
            rows += len(nxt.rows)
        return batch

    def _forward(self, batch: Sequence[Pending]) -> List[List[float]]:
        pixels = batch[0].pixels if len(batch) == 1 else torch.cat([p.pixels for p in batch])
        return self.model.forward(pixels, [r for p in batch for r in p.rows])

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            batch = [p for p in batch if not p.future.cancelled()]
            if not batch:
                continue
            try:
                probs = await loop.run_in_executor(self.compute, self._forward, batch)
            except Exception as e:  # the batch fails, the server goes on
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(e)
                continue
            n = sum(len(p.rows) for p in batch)
            self.executions += 1
            self.inferences += n
            self.batch_sizes[n] = self.batch_sizes.get(n, 0) + 1
            at = 0
            for p in batch:
                if not p.future.done():
                    p.future.set_result(probs[at:at + len(p.rows)])
                at += len(p.rows)


def make_app(model: Model, max_rows: int = 16, max_delay_ms: float = 5.0, workers: int = 0) -> web.Application:
    """The aiohttp application; its batcher and thread pool start and stop with it."""
    @web.middleware
    async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as e:  # 404, 405, 413: the protocol's {"error": ...} body
            if e.status < 400:
                raise
            return web.json_response({"error": e.reason}, status=e.status)

    app = web.Application(client_max_size=MAX_BODY, middlewares=[json_errors])
    pool = ThreadPoolExecutor(max_workers=workers or (os.cpu_count() or 2), thread_name_prefix="preprocess")
    state: Dict[str, Any] = {}
    name, version = model.name, model.version

    async def on_startup(app: web.Application) -> None:
        state["batcher"] = Batcher(model, max_rows, max_delay_ms / 1000.0)
        state["batcher"].start()

    async def on_cleanup(app: web.Application) -> None:
        await state["batcher"].stop()
        pool.shutdown(wait=True)

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)

    def error(code: int, msg: str) -> web.Response:
        return web.json_response({"error": msg}, status=code)

    def prepare(body: bytes) -> Any:
        p = parse_infer(model, body)
        pixels, rows = model.preprocess(p.images, p.hyps, p.premises)
        return p, pixels, rows

    async def infer(request: web.Request) -> web.Response:
        if request.headers.get("Inference-Header-Content-Length") is not None:
            return error(400, "the binary tensor extension is not supported by this server")
        body = await request.read()
        loop = asyncio.get_running_loop()
        try:
            parsed, pixels, rows = await loop.run_in_executor(pool, prepare, body)
        except BadRequest as e:
            return error(400, str(e))
        except Exception as e:  # never take the server down
            return error(500, f"internal error: {e}")
        try:
            probs = await state["batcher"].submit(pixels, rows)
        except Exception as e:
            return error(500, f"internal error: {e}")
        return web.json_response(make_response(model, parsed.req, model.results(probs)))

    async def ok(request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def metadata(request: web.Request) -> web.Response:
        return web.json_response(model.metadata())

    async def config(request: web.Request) -> web.Response:
        return web.json_response({"name": name, "max_batch_size": model.max_batch_size,
                                  "dynamic_batching": {"max_queue_delay_microseconds": int(max_delay_ms * 1000)}})

    async def stats(request: web.Request) -> web.Response:
        b: Batcher = state["batcher"]
        return web.json_response({"model_stats": [{
            "name": name, "version": version, "inference_count": b.inferences, "execution_count": b.executions,
            "batch_stats": [{"batch_size": k, "compute_infer": {"count": v}} for k, v in sorted(b.batch_sizes.items())]}]})

    for prefix in (f"/v2/models/{name}", f"/v2/models/{name}/versions/{version}"):
        app.router.add_post(prefix + "/infer", infer)
        app.router.add_get(prefix, metadata)
        app.router.add_get(prefix + "/ready", ok)
        app.router.add_get(prefix + "/config", config)
        app.router.add_get(prefix + "/stats", stats)
    app.router.add_get("/v2/health/live", ok)
    app.router.add_get("/v2/health/ready", ok)
    return app


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-repository", required=True, help="repository written by scripts/export_ofa.py")
    ap.add_argument("--model", default="ofa_entailment")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8011)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]: where the module runs")
    ap.add_argument("--max-batch-size", type=int, default=16, help="rows per forward (requests are never split)")
    ap.add_argument("--max-delay-ms", type=float, default=5.0, help="longest wait for more requests after a batch's first")
    ap.add_argument("--workers", type=int, default=0, help="preprocessing threads (0: one per core)")
    ap.add_argument("--torch-threads", type=int, default=0,
                    help="intra-op threads of the forward (0: torch's default; one forward runs at a time)")
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print("python_batching_server: refusing to listen beyond loopback", file=sys.stderr)
        return 2
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    model = Model(args.model_repository, args.model, device=args.device)
    print(f"python_batching_server: {args.model} on http://{args.host}:{args.port} (torch {torch.__version__}, "
          f"{args.device}, batches of <= {args.max_batch_size} rows, {args.max_delay_ms} ms delay, "
          f"{torch.get_num_threads()} threads)", file=sys.stderr, flush=True)
    web.run_app(make_app(model, args.max_batch_size, args.max_delay_ms, args.workers), host=args.host,
                port=args.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
