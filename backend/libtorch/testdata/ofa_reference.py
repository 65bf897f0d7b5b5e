"""Runs an exported OFA module, forward(patch_images, input_ids) -> logits, on inputs a Go test wrote, in
float32 and in a reduced precision the way libtorch.Options.Precision defines it: floating parameters,
buffers and inputs converted (nn.Module.to(dtype) leaves integer buffers alone), integer inputs as they
are, outputs of that type returned as float32. Prints both sets of logits as JSON.

Usage: ofa_reference.py MODEL.pt INPUTS.json
INPUTS.json: {"precision": "bfloat16", "image": [floats], "image_shape": [B, 3, H, W],
              "ids": [ints], "ids_shape": [B, L]}
Output: {"float32": [B*3 floats], "<precision>": [B*3 floats]}
"""
import json
import sys
from typing import Dict, List

import torch

PRECISIONS: Dict[str, torch.dtype] = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def run(model_path: str, image: torch.Tensor, ids: torch.Tensor, dtype: torch.dtype) -> List[float]:
    module = torch.jit.load(model_path, map_location="cpu").eval()
    if dtype != torch.float32:
        module = module.to(dtype)
        image = image.to(dtype)
    with torch.no_grad():
        out = module(image, ids)
    return out.float().reshape(-1).tolist()


def main() -> None:
    model_path, inputs_path = sys.argv[1], sys.argv[2]
    with open(inputs_path) as f:
        spec = json.load(f)
    image = torch.tensor(spec["image"], dtype=torch.float32).reshape(spec["image_shape"])
    ids = torch.tensor(spec["ids"], dtype=torch.int64).reshape(spec["ids_shape"])
    name = spec["precision"]
    out = {"float32": run(model_path, image, ids, torch.float32), name: run(model_path, image, ids, PRECISIONS[name])}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
