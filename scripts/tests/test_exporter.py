"""export_ofa.py: repository layout, metadata, --model-dir loading, and failures that write nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from typing import Dict, Optional, Sequence

import numpy as np
import pytest
import torch
from PIL import Image

from ofa.bpe import encode_prompt
from ofa.config import preset, to_hf_config
from ofa.export import export, main, ofa_config_pbtxt, raw_config_pbtxt
from ofa.modeling import init_weights, build_model
from ofa.reference import Reference

pytestmark = pytest.mark.usefixtures("bpe_dir")
SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

META_KEYS = {"format_version", "config_name", "source", "seed", "dtype", "device", "image_size", "image_tokens",
             "resample", "mean", "std", "prompt_with_premise", "prompt_without_premise", "text_normalization",
             "bos_id", "pad_id", "eos_id", "answers", "answer_ids", "labels", "max_text_length", "max_src_length",
             "prompt_type", "vocab_file", "merges_file", "vocab_size", "max_batch_size", "model_file",
             "model_config", "torch_version", "model_sha256", "prompt_override", "gen_type", "scoring"}


def _tree(root: str) -> Dict[str, str]:
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = str(tmp_path_factory.mktemp("repo"))
    export(["--random-init", "--config", "micro", "--seed", "3", "--out", out, "--quiet"])
    return out


def test_layout_and_configs(repo: str) -> None:
    files = set(_tree(repo))
    assert files == {"ofa_entailment_raw/config.pbtxt", "ofa_entailment_raw/1/model.pt",
                     "ofa_entailment/config.pbtxt", "ofa_entailment/1/model.pt", "ofa_entailment/1/ofa_meta.json",
                     "ofa_entailment/1/vocab.json", "ofa_entailment/1/merges.txt"}
    raw = open(os.path.join(repo, "ofa_entailment_raw/config.pbtxt")).read()
    for line in ('name: "ofa_entailment_raw"', 'platform: "pytorch_libtorch"', "max_batch_size: 16",
                 '{ name: "IMAGE" data_type: TYPE_FP32 dims: [ 3, 64, 64 ] }',
                 '{ name: "INPUT_IDS" data_type: TYPE_INT64 dims: [ -1 ] }',
                 '{ name: "LOGITS" data_type: TYPE_FP32 dims: [ 3 ] }',
                 "dynamic_batching { max_queue_delay_microseconds: 2000 }", "kind: KIND_CPU"):
        assert line in raw
    ofa = open(os.path.join(repo, "ofa_entailment/config.pbtxt")).read()
    for line in ('name: "ofa_entailment"', 'backend: "ofa"', '{ name: "IMAGE" data_type: TYPE_STRING dims: [ 1 ] }',
                 '{ name: "PREMISE" data_type: TYPE_STRING dims: [ 1 ] optional: true }',
                 '{ name: "SCORES" data_type: TYPE_FP32 dims: [ 3 ] }',
                 'parameters { key: "metadata_file" value: { string_value: "ofa_meta.json" } }',
                 "instance_group [ { count: 1 kind: KIND_CPU } ]"):
        assert line in ofa
    a = os.path.join(repo, "ofa_entailment_raw/1/model.pt")
    b = os.path.join(repo, "ofa_entailment/1/model.pt")
    assert open(a, "rb").read() == open(b, "rb").read()


def test_cuda_export_puts_both_models_on_gpu0() -> None:
    # A --device cuda export serves ofa_entailment on the GPU too, not only the raw model (issue 8).
    for cfg in (raw_config_pbtxt(64, 64, 16, "cuda"), ofa_config_pbtxt(16, "cuda")):
        assert "instance_group [ { count: 1 kind: KIND_GPU gpus: [ 0 ] } ]" in cfg
        assert "KIND_CPU" not in cfg


def test_meta(repo: str) -> None:
    with open(os.path.join(repo, "ofa_entailment/1/ofa_meta.json")) as f:
        meta = json.load(f)
    assert set(meta) == META_KEYS
    assert meta["image_size"] == [64, 64] and meta["image_tokens"] == 16
    assert meta["answer_ids"] == [4420, 117, 2085] and meta["labels"] == ["entailment", "contradiction", "neutral"]
    assert (meta["bos_id"], meta["pad_id"], meta["eos_id"]) == (0, 1, 2)
    assert meta["prompt_with_premise"] == ' can image and text1 " {premise} " imply text2 " {hypothesis} "?'
    assert meta["prompt_without_premise"] == ' does the image describe " {hypothesis} "?'
    assert meta["mean"] == [0.5] * 3 and meta["std"] == [0.5] * 3
    assert meta["max_text_length"] == 1024 and meta["prompt_type"] == "prev_output"
    assert meta["vocab_size"] == 59457 and meta["seed"] == 3 and meta["dtype"] == "fp32"
    # No configuration.json: no override, no ModelScope gen_type; the server's scoring is always traverse.
    assert meta["prompt_override"] is None and meta["gen_type"] is None and meta["scoring"] == "traverse"


def test_reference_pipeline_eager_equals_torchscript(repo: str, tmp_path) -> None:
    arr = (np.random.RandomState(0).rand(40, 90, 3) * 255).astype("uint8")
    img_path = str(tmp_path / "x.png")
    Image.fromarray(arr).save(img_path)
    eager = Reference(repo).predict(img_path, "There are two birds.", "two dogs run.")
    ts = Reference(repo, torchscript=True).predict(img_path, "There are two birds.", "two dogs run.")
    assert max(abs(a - b) for a, b in zip(eager["logits"], ts["logits"])) <= 1e-5
    assert eager["input_ids"][0] == 0 and eager["input_ids"][-1] == 2
    assert abs(sum(eager["probabilities"]) - 1) < 1e-9 and eager["label"] in eager["labels"]
    # CLI in a fresh process
    out = subprocess.run([sys.executable, "-m", "ofa.reference", "--repo", repo, "--image", img_path,
                          "--hypothesis", "There are two birds.", "--premise", "two dogs run.",
                          "--dump-image", str(tmp_path / "img.f32")],
                         capture_output=True, text=True, cwd=SCRIPTS, timeout=300)
    assert out.returncode == 0, out.stderr
    cli = json.loads(out.stdout)
    assert cli["input_ids"] == eager["input_ids"] and np.allclose(cli["logits"], eager["logits"], atol=1e-6)
    dumped = np.fromfile(str(tmp_path / "img.f32"), dtype="<f4").reshape(3, 64, 64)
    want = np.asarray(Image.fromarray(arr).resize((64, 64), Image.BICUBIC), dtype=np.float32) / 255.0
    assert np.allclose(dumped, ((want - 0.5) / 0.5).transpose(2, 0, 1), atol=1e-6)


def test_reference_applies_exif_orientation(repo: str, tmp_path) -> None:
    arr = np.zeros((20, 60, 3), dtype="uint8")
    arr[:, :30] = 255
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = str(tmp_path / "rot.jpg")
    img.save(path, exif=exif.tobytes(), quality=95)
    ref = Reference(repo)
    t = ref.image_tensor(path)
    upright = ref.image_tensor(img.transpose(Image.ROTATE_270))
    assert (t - upright).abs().mean() < 0.05


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ModelScope-style directory of a small real-architecture model (resnet50 stem, d=32)."""
    d = str(tmp_path_factory.mktemp("ckpt"))
    cfg = preset("micro", resnet_layers=[3, 4, 6], patch_image_size=32)
    model = build_model(cfg, init="random", seed=4)
    init_weights(model, 4, std=0.2, perturb_norms=True)
    sd = {"model." + k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(to_hf_config(cfg), f)
    with open(os.path.join(d, "configuration.json"), "w") as f:
        json.dump({"task": "visual-entailment", "model": {"type": "ofa", "gen_type": "traverse", "prompt_type":
                   "prev_output", "patch_image_size": 32, "answer2label": "ans2label.json"}}, f)
    with open(os.path.join(d, "ans2label.json"), "w") as f:
        json.dump({"no": 0, "yes": 1, "maybe": 2}, f)
    return d


def test_model_dir_export(model_dir: str, tmp_path, capsys) -> None:
    out = str(tmp_path / "repo")
    assert main(["--model-dir", model_dir, "--out", out]) == 0
    err = capsys.readouterr().err
    assert "prompt_type=prev_output" in err and "stripped the 'model.' prefix" in err and "float16" in err
    assert "scoring: the server scores the three answers in one pass" in err
    assert "gen_type=traverse: the same scoring as ModelScope" in err
    meta = json.load(open(os.path.join(out, "ofa_entailment/1/ofa_meta.json")))
    assert meta["image_size"] == [32, 32] and meta["source"] == os.path.basename(model_dir)
    assert meta["gen_type"] == "traverse" and meta["scoring"] == "traverse" and meta["prompt_override"] is None
    assert "dims: [ 3, 32, 32 ]" in open(os.path.join(out, "ofa_entailment_raw/config.pbtxt")).read()


def _broken_dir(model_dir: str, tmp_path, edit) -> str:
    d = str(tmp_path / "broken")
    os.makedirs(d)
    for f in ("config.json", "configuration.json", "ans2label.json"):
        with open(os.path.join(model_dir, f)) as src, open(os.path.join(d, f), "w") as dst:
            dst.write(src.read())
    sd = torch.load(os.path.join(model_dir, "pytorch_model.bin"))
    edit(sd)
    torch.save(sd, os.path.join(d, "pytorch_model.bin"))
    return d


def _mismatch(sd) -> None:
    del sd["model.decoder.layers.0.fc1.weight"]
    sd["model.encoder.extra.weight"] = torch.zeros(1)
    sd["model.encoder.image_proj.weight"] = torch.zeros(16, 1024)


@pytest.mark.parametrize("case", ["mismatch", "corrupt", "bad_config"])
def test_failures_write_nothing(repo: str, model_dir: str, tmp_path, capsys, case: str) -> None:
    before = _tree(repo)
    if case == "mismatch":
        d = _broken_dir(model_dir, tmp_path, _mismatch)
    else:
        d = _broken_dir(model_dir, tmp_path, lambda sd: None)
        if case == "corrupt":
            with open(os.path.join(d, "pytorch_model.bin"), "r+b") as f:
                f.seek(100)
                f.write(b"\x00garbage" * 64)
        else:
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump({"d_model": 32, "normformer": False}, f)
    assert main(["--model-dir", d, "--out", repo, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "nothing was written" in err
    if case == "mismatch":
        assert "missing keys (1)" in err and "decoder.layers.0.fc1.weight" in err
        assert "unexpected keys (1)" in err and "encoder.extra.weight" in err
        assert "encoder.image_proj.weight: [32, 1024] -> [16, 1024]" in err
    elif case == "corrupt":
        assert "cannot read checkpoint" in err
    else:
        assert "config.json" in err
    assert _tree(repo) == before
    assert not [f for f in os.listdir(repo) if f.startswith(".")]


def test_cli_exit_code(model_dir: str, tmp_path) -> None:
    d = _broken_dir(model_dir, tmp_path, _mismatch)
    out = str(tmp_path / "repo")
    r = subprocess.run([sys.executable, os.path.join(SCRIPTS, "export_ofa.py"), "--model-dir", d, "--out", out],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "missing keys" in r.stderr
    assert os.listdir(out) == []


def _variant(model_dir: str, tmp_path, name: str, model_conf: Optional[Dict[str, object]] = None,
             drop: Sequence[str] = ()) -> str:
    """A copy of model_dir (weights hard-linked) with configuration.json's model section updated by
    model_conf (a None value deletes the key) and the files in drop removed."""
    d = str(tmp_path / name)
    os.makedirs(d)
    for f in os.listdir(model_dir):
        if f in drop:
            continue
        os.link(os.path.join(model_dir, f), os.path.join(d, f))
    if model_conf is not None and "configuration.json" not in drop:
        conf = json.load(open(os.path.join(model_dir, "configuration.json")))
        for k, v in model_conf.items():
            if v is None:
                conf["model"].pop(k, None)
            else:
                conf["model"][k] = v
        os.unlink(os.path.join(d, "configuration.json"))
        with open(os.path.join(d, "configuration.json"), "w") as f:
            json.dump(conf, f)
    return d


@pytest.mark.parametrize("case,want", [
    ("no configuration.json", "configuration.json does not exist: a ModelScope model directory has configuration.json"),
    ("no answer file", "ans2label.json does not exist"),
    ("unusable prompt", "model.prompt: prompt '{} {} {}' uses argument 2"),
    ("unknown gen_type", "model.gen_type 'beam' is not one of ModelScope's"),
])
def test_model_dir_errors_name_the_file(model_dir: str, tmp_path, capsys, case: str, want: str) -> None:
    if case == "no configuration.json":
        d = _variant(model_dir, tmp_path, "v", drop=["configuration.json"])
    elif case == "no answer file":
        d = _variant(model_dir, tmp_path, "v", drop=["ans2label.json"])
    elif case == "unusable prompt":
        d = _variant(model_dir, tmp_path, "v", {"prompt": "{} {} {}"})
    else:
        d = _variant(model_dir, tmp_path, "v", {"gen_type": "beam"})
    out = str(tmp_path / "repo")
    assert main(["--model-dir", d, "--out", out, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert want in err and "nothing was written" in err
    if case in ("no configuration.json", "no answer file", "unusable prompt"):
        assert os.path.join(d, "") in err  # the message names the file by its path
    assert [f for f in os.listdir(out)] == []


def test_model_dir_prompt_override_and_word_limit(model_dir: str, tmp_path, capsys) -> None:
    prompt = " is {} what the image shows?"
    d = _variant(model_dir, tmp_path, "v", {"prompt": prompt, "max_src_length": 4, "gen_type": None})
    out = str(tmp_path / "repo")
    assert main(["--model-dir", d, "--out", out]) == 0
    err = capsys.readouterr().err
    assert "replaces both templates" in err and "leaves out the hypothesis" in err
    assert "gen_type=generation: ModelScope would beam-search" in err
    meta = json.load(open(os.path.join(out, "ofa_entailment/1/ofa_meta.json")))
    assert meta["prompt_override"] == prompt and meta["gen_type"] == "generation" and meta["max_src_length"] == 4
    assert meta["prompt_without_premise"] == " is {hypothesis} what the image shows?"
    assert meta["prompt_with_premise"] == " is {premise} what the image shows?"
    ref = Reference(out)
    # What ModelScope's preprocessor computes: prompt.format(...) over pre_caption(text, 4), ids cut to 4.
    got = ref.predict(_png(tmp_path), "One two three four five six", "A B C D E")
    assert got["prompt"] == " is a b c d what the image shows?"
    assert got["input_ids"] == encode_prompt(ref.bpe, " is a b c d what the image shows?", 0, 2, 4)
    alone = ref.input_ids("One two three four five six")
    assert alone == encode_prompt(ref.bpe, " is one two three four what the image shows?", 0, 2, 4)


def _png(tmp_path) -> str:
    p = str(tmp_path / "img.png")
    Image.fromarray((np.random.RandomState(1).rand(20, 30, 3) * 255).astype("uint8")).save(p)
    return p
