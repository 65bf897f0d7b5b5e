#!/usr/bin/env python3
"""Export OFA visual entailment to TorchScript + a Triton-layout model repository.

Examples (from the repository root, with /usr/bin/python3):
  scripts/export_ofa.py --random-init --config tiny --image-size 256 --seed 0 --out models
  scripts/export_ofa.py --model-dir ofa_visual-entailment_snli-ve_large_en --dtype fp16 --device cuda
See models/README.md for the layout and the metadata file.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ofa.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
