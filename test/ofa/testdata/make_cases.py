#!/usr/bin/env python3
"""End-to-end cases for test/ofa: real photos x prompts, with the Python reference's answers.

Usage: make_cases.py REPO OUTDIR

Copies real photos from Debian packages (python-matplotlib-data's grace_hopper.jpg, python3-skimage's
data images) into OUTDIR and writes PIL-made variants of them (a progressive JPEG carrying an EXIF
rotation, a grayscale PNG, a palette PNG), then runs every image x prompt case through
scripts/ofa/reference.py's Reference (PIL preprocessing, OFA prompt + BPE, the eager module rebuilt from
REPO's ofa_entailment weights), one case per forward, and writes OUTDIR/cases.json:
  [{"image": file name, "hypothesis": str, "premise": str or null, "probabilities": [3], "label": str}]
Fails loudly when a source photo is missing (install the packages: scripts/dev/setup.sh).
"""
import json
import os
import shutil
import subprocess
import sys
from typing import List

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "scripts"))

from ofa.reference import Reference  # noqa: E402

PROMPTS = [
    ("a woman in a uniform.", None),
    ("There is a cat.", "An animal sits on a table, next to a window!"),
    ("the picture shows a busy street in a large city at night, with many cars, bright shop windows, "
     "people walking on the pavement, a bus stop, tall buildings and a few trees along the road", None),
    ("Two dogs play", "A ~long~ premise: the IMAGE shows an outdoor scene -- grass/trees, a blue sky "
     "and, in the distance, something that might be a lake or maybe a river; it is sunny."),
]


def dpkg_file(pkg: str, suffix: str) -> str:
    out = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True)
    for f in out.stdout.split():
        if f.endswith(suffix) and os.path.isfile(f):
            return f
    sys.exit(f"make_cases.py: {suffix} not found in Debian package {pkg} (run scripts/dev/setup.sh)")


def make_images(out: str) -> List[str]:
    names = []
    shutil.copy(dpkg_file("python-matplotlib-data", "/grace_hopper.jpg"), os.path.join(out, "grace_hopper.jpg"))
    names.append("grace_hopper.jpg")
    shutil.copy(dpkg_file("python3-skimage", "/data/astronaut.png"), os.path.join(out, "astronaut.png"))
    names.append("astronaut.png")
    chelsea = Image.open(dpkg_file("python3-skimage", "/data/chelsea.png")).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    chelsea.save(os.path.join(out, "chelsea_exif6_progressive.jpg"), quality=88, progressive=True, exif=exif.tobytes())
    names.append("chelsea_exif6_progressive.jpg")
    shutil.copy(dpkg_file("python3-skimage", "/data/camera.png"), os.path.join(out, "camera_gray.png"))
    names.append("camera_gray.png")
    coffee = Image.open(dpkg_file("python3-skimage", "/data/coffee.png")).convert("RGB")
    coffee.quantize(colors=64).save(os.path.join(out, "coffee_palette.png"))
    names.append("coffee_palette.png")
    return names


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    repo, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    names = make_images(out)
    ref = Reference(repo)
    cases = []
    for i, name in enumerate(names):
        for hyp, premise in PROMPTS:
            hyp = hyp + " indeed" * i  # every case a different text length
            r = ref.predict(os.path.join(out, name), hyp, premise)
            cases.append({"image": name, "hypothesis": hyp, "premise": premise,
                          "probabilities": r["probabilities"], "label": r["label"]})
    with open(os.path.join(out, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
