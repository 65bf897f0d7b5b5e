#!/usr/bin/env python3
"""Times OFA's Python image preprocessing on one core, for scripts/bench/bench_preprocess.sh.

Usage: bench_preprocess.py make JPEG     write the benchmark's 640x480 JPEG (a real photo from Debian)
       bench_preprocess.py time JPEG N   print "WALL_MS CPU_MS" per image of PIL + torchvision (best of N rounds;
                                         CPU time is steadier than wall time on a loaded machine)
"""
import os
import subprocess
import sys
import time
import timeit

import torch
from PIL import Image
from torchvision import transforms


def make(path: str) -> None:
    files = subprocess.run(["dpkg", "-L", "python3-skimage"], capture_output=True, text=True, check=True).stdout
    src = next(f for f in files.split() if f.endswith("/skimage/data/astronaut.png"))
    Image.open(src).convert("RGB").resize((640, 480), Image.BICUBIC).save(path, quality=90)


def time_it(path: str, rounds: int) -> None:
    torch.set_num_threads(1)
    tf = transforms.Compose([
        transforms.Resize((480, 480), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]),
    ])
    with open(path, "rb") as f:
        data = f.read()
    import io

    def one() -> torch.Tensor:
        # What OFA/ModelScope does per request: open the bytes, RGB, resize, tensor, normalize.
        return tf(Image.open(io.BytesIO(data)).convert("RGB"))

    assert one().shape == (3, 480, 480)
    n = 20
    wall = min(timeit.repeat(one, number=n, repeat=rounds)) / n
    cpu = min(timeit.repeat(one, number=n, repeat=rounds, timer=time.process_time)) / n
    print(f"{wall * 1e3:.3f} {cpu * 1e3:.3f}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        time_it(sys.argv[2], int(sys.argv[3]))
