"""The batching Python baseline answers like ofaserve's ofa_entailment, with the reference's scores, and
really batches: concurrent requests share forwards, a request is never split, bad requests get 400."""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from aiohttp import web
from PIL import Image

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SCRIPTS, "bench"))

import python_baseline_server as pbs  # noqa: E402
import python_batching_server as batching  # noqa: E402
from ofa.reference import Reference  # noqa: E402

MAX_ROWS = 4
DELAY_MS = 150.0  # long, so that concurrent requests of a loaded test machine meet in one batch


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[int, str]]:
    repo = str(tmp_path_factory.mktemp("repo"))
    subprocess.run([sys.executable, os.path.join(SCRIPTS, "export_ofa.py"), "--random-init", "--config", "micro",
                    "--image-size", "32", "--max-batch-size", "4", "--out", repo, "--quiet"], check=True)
    model = pbs.Model(repo)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(batching.make_app(model, MAX_ROWS, DELAY_MS, workers=4))
    started = threading.Event()
    port: List[int] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        started.set()
        loop.run_forever()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert started.wait(60)
    yield port[0], repo
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    t.join(30)


def png(color: Tuple[int, int, int], size: Tuple[int, int] = (40, 24)) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", size, color)
    for x in range(size[0]):
        img.putpixel((x, x % size[1]), (255 - color[0], x * 5 % 256, 7))
    img.save(buf, format="PNG")
    return buf.getvalue()


def call(port: int, method: str, path: str, body: Optional[Dict[str, Any]] = None,
         headers: Optional[Dict[str, str]] = None) -> Tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=headers or {})
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    return r.status, (json.loads(raw) if raw else None)


def request(images: List[bytes], hyps: List[str], premises: Optional[List[str]] = None) -> Dict[str, Any]:
    b = len(images)
    inputs = [{"name": "IMAGE", "datatype": "BYTES", "shape": [b, 1], "data": [base64.b64encode(i).decode() for i in images]},
              {"name": "HYPOTHESIS", "datatype": "BYTES", "shape": [b, 1], "data": hyps}]
    if premises is not None:
        inputs.append({"name": "PREMISE", "datatype": "BYTES", "shape": [b, 1], "data": premises})
    return {"inputs": inputs}


def stats(port: int) -> Dict[str, Any]:
    code, doc = call(port, "GET", "/v2/models/ofa_entailment/stats")
    assert code == 200
    return doc["model_stats"][0]


def test_metadata_config_ready(server) -> None:
    port, _ = server
    assert call(port, "GET", "/v2/health/ready")[0] == 200
    assert call(port, "GET", "/v2/models/ofa_entailment/ready")[0] == 200
    code, meta = call(port, "GET", "/v2/models/ofa_entailment")
    assert code == 200 and [i["name"] for i in meta["inputs"]] == ["IMAGE", "HYPOTHESIS", "PREMISE"]
    code, cfg = call(port, "GET", "/v2/models/ofa_entailment/config")
    assert code == 200 and cfg["max_batch_size"] == 4
    assert call(port, "GET", "/v2/models/nope")[0] == 404


def test_concurrent_requests_share_forwards_and_match_the_reference(server) -> None:
    port, repo = server
    ref = Reference(repo, torchscript=True)
    cases = [(png((200, 30 * i, 30)), f"there are {i} birds in a very long sentence" * (1 + i % 2),
              "two dogs" if i % 2 else None) for i in range(MAX_ROWS)]
    before = stats(port)

    def one(c: Tuple[bytes, str, Optional[str]]) -> Tuple[int, Any]:
        return call(port, "POST", "/v2/models/ofa_entailment/infer",
                    request([c[0]], [c[1]], None if c[2] is None else [c[2]]))

    with ThreadPoolExecutor(len(cases)) as ex:
        replies = list(ex.map(one, cases))
    after = stats(port)
    for (img, hyp, prem), (code, resp) in zip(cases, replies):
        assert code == 200, resp
        outs = {o["name"]: o for o in resp["outputs"]}
        want = ref.predict(img, hyp, prem)
        assert outs["SCORES"]["data"] == pytest.approx(want["probabilities"], abs=1e-5)
        assert outs["LABEL"]["data"] == [want["label"]]
        result = json.loads(outs["RESULT"]["data"][0])
        assert result["label"] == want["label"] and result["confidence"] == pytest.approx(want["confidence"], abs=1e-5)
    executions = after["execution_count"] - before["execution_count"]
    assert after["inference_count"] - before["inference_count"] == len(cases)
    assert executions < len(cases), f"{len(cases)} concurrent requests ran in {executions} forwards: no batching"


def test_a_request_is_never_split(server) -> None:
    port, _ = server
    before = stats(port)
    body = request([png((5, 5, 5))] * 3, ["a", "b", "c"])
    with ThreadPoolExecutor(2) as ex:
        replies = list(ex.map(lambda _: call(port, "POST", "/v2/models/ofa_entailment/infer", body), range(2)))
    assert all(code == 200 and resp["outputs"][2]["shape"] == [3, 3] for code, resp in replies)
    after = stats(port)
    sizes = {b["batch_size"]: b["compute_infer"]["count"] for b in after["batch_stats"]}
    old = {b["batch_size"]: b["compute_infer"]["count"] for b in before["batch_stats"]}
    assert after["execution_count"] - before["execution_count"] == 2
    assert sizes.get(3, 0) - old.get(3, 0) == 2, sizes  # 3 + 3 rows exceed 4: two forwards of 3


@pytest.mark.parametrize("body,needle", [
    ({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1, 1], "data": ["%%%"]},
                 {"name": "HYPOTHESIS", "datatype": "BYTES", "shape": [1, 1], "data": ["x"]}]}, "base64"),
    ({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1, 1], "data": [base64.b64encode(b"not an image").decode()]},
                 {"name": "HYPOTHESIS", "datatype": "BYTES", "shape": [1, 1], "data": ["x"]}]}, "IMAGE[0]"),
    ({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1, 1], "data": ["aGk="]}]}, "HYPOTHESIS"),
    ({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [5, 1], "data": ["aGk="] * 5},
                 {"name": "HYPOTHESIS", "datatype": "BYTES", "shape": [5, 1], "data": ["x"] * 5}]}, "<= 4"),
    ({"nope": 1}, "inputs"),
])
def test_bad_requests_get_400_and_the_server_survives(server, body, needle) -> None:
    port, _ = server
    before = stats(port)["execution_count"]
    code, resp = call(port, "POST", "/v2/models/ofa_entailment/infer", body)
    assert code == 400 and needle in resp["error"]
    assert stats(port)["execution_count"] == before  # refused before the queue
    code, _ = call(port, "POST", "/v2/models/ofa_entailment/infer", request([png((1, 2, 3))], ["ok"]))
    assert code == 200


def test_binary_extension_is_refused(server) -> None:
    port, _ = server
    code, resp = call(port, "POST", "/v2/models/ofa_entailment/infer", {"inputs": []},
                      headers={"Inference-Header-Content-Length": "14"})
    assert code == 400 and "binary" in resp["error"]
