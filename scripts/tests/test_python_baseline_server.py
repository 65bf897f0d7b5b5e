"""The Python baseline server answers KServe v2 JSON like ofaserve's ofa_entailment, with the reference's scores."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import subprocess
import sys
import threading
from typing import Any, Dict, Optional, Tuple

import pytest
from PIL import Image

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SCRIPTS, "bench"))

import python_baseline_server as pbs  # noqa: E402
from ofa.reference import Reference  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    repo = str(tmp_path_factory.mktemp("repo"))
    subprocess.run([sys.executable, os.path.join(SCRIPTS, "export_ofa.py"), "--random-init", "--config", "micro",
                    "--image-size", "32", "--max-batch-size", "4", "--out", repo, "--quiet"], check=True)
    model = pbs.Model(repo)
    srv = pbs.serve(model, "127.0.0.1", 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1], repo
    srv.shutdown()


def png(color: Tuple[int, int, int], size: Tuple[int, int] = (40, 24)) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", size, color)
    for x in range(size[0]):
        img.putpixel((x, x % size[1]), (255 - color[0], x * 5 % 256, 7))
    img.save(buf, format="PNG")
    return buf.getvalue()


def call(port: int, method: str, path: str, body: Optional[Dict[str, Any]] = None,
         headers: Optional[Dict[str, str]] = None) -> Tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers=headers or {})
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    return r.status, (json.loads(raw) if raw else None)


def request(images, hyps, premises=None) -> Dict[str, Any]:
    b = len(images)
    inputs = [{"name": "IMAGE", "datatype": "BYTES", "shape": [b, 1], "data": [base64.b64encode(i).decode() for i in images]},
              {"name": "HYPOTHESIS", "datatype": "BYTES", "shape": [b, 1], "data": hyps}]
    if premises is not None:
        inputs.append({"name": "PREMISE", "datatype": "BYTES", "shape": [b, 1], "data": premises})
    return {"inputs": inputs}


def test_metadata_config_ready(server) -> None:
    port, _ = server
    assert call(port, "GET", "/v2/health/ready")[0] == 200
    assert call(port, "GET", "/v2/models/ofa_entailment/ready")[0] == 200
    code, meta = call(port, "GET", "/v2/models/ofa_entailment")
    assert code == 200 and [i["name"] for i in meta["inputs"]] == ["IMAGE", "HYPOTHESIS", "PREMISE"]
    code, cfg = call(port, "GET", "/v2/models/ofa_entailment/config")
    assert code == 200 and cfg["max_batch_size"] == 4
    assert call(port, "GET", "/v2/models/nope")[0] == 404


def test_scores_match_the_reference_pipeline(server) -> None:
    port, repo = server
    ref = Reference(repo, torchscript=True)
    imgs = [png((200, 30, 30)), png((10, 90, 220), (17, 33))]
    hyps = ["There are two birds.", "a man rides a bike"]
    code, resp = call(port, "POST", "/v2/models/ofa_entailment/infer", request(imgs, hyps, ["two dogs", "a street"]))
    assert code == 200, resp
    outs = {o["name"]: o for o in resp["outputs"]}
    assert outs["SCORES"]["shape"] == [2, 3]
    for i in range(2):
        want = ref.predict(imgs[i], hyps[i], ["two dogs", "a street"][i])
        got = outs["SCORES"]["data"][3 * i: 3 * i + 3]
        assert got == pytest.approx(want["probabilities"], abs=1e-5)
        assert outs["LABEL"]["data"][i] == want["label"]
        result = json.loads(outs["RESULT"]["data"][i])
        assert result["label"] == want["label"] and result["confidence"] == pytest.approx(want["confidence"], abs=1e-5)
    # Without a premise the other template is used: scores differ from the premise request.
    code, resp1 = call(port, "POST", "/v2/models/ofa_entailment/infer", request(imgs[:1], hyps[:1]))
    assert code == 200
    want = ref.predict(imgs[0], hyps[0])
    assert resp1["outputs"][2]["data"] == pytest.approx(want["probabilities"], abs=1e-5)


@pytest.mark.parametrize("body,needle", [
    ({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1, 1], "data": ["%%%"]},
                 {"name": "HYPOTHESIS", "datatype": "BYTES", "shape": [1, 1], "data": ["x"]}]}, "base64"),
    ({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1, 1], "data": [base64.b64encode(b"not an image").decode()]},
                 {"name": "HYPOTHESIS", "datatype": "BYTES", "shape": [1, 1], "data": ["x"]}]}, "IMAGE[0]"),
    ({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1, 1], "data": ["aGk="]}]}, "HYPOTHESIS"),
    ({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [2, 1], "data": ["aGk="]},
                 {"name": "HYPOTHESIS", "datatype": "BYTES", "shape": [1, 1], "data": ["x"]}]}, "string elements"),
    ({"inputs": [{"name": "EXTRA", "datatype": "BYTES", "shape": [1], "data": ["x"]}]}, "EXTRA"),
    ({"nope": 1}, "inputs"),
])
def test_bad_requests_get_400_and_the_server_survives(server, body, needle) -> None:
    port, _ = server
    code, resp = call(port, "POST", "/v2/models/ofa_entailment/infer", body)
    assert code == 400 and needle in resp["error"]
    code, _ = call(port, "POST", "/v2/models/ofa_entailment/infer", request([png((1, 2, 3))], ["ok"]))
    assert code == 200


def test_binary_extension_is_refused(server) -> None:
    port, _ = server
    code, resp = call(port, "POST", "/v2/models/ofa_entailment/infer", {"inputs": []},
                      headers={"Inference-Header-Content-Length": "14"})
    assert code == 400 and "binary" in resp["error"]


def test_batch_over_max_is_refused(server) -> None:
    port, _ = server
    imgs = [png((9, 9, 9))] * 5
    code, resp = call(port, "POST", "/v2/models/ofa_entailment/infer", request(imgs, ["x"] * 5))
    assert code == 400 and "<= 4" in resp["error"]
