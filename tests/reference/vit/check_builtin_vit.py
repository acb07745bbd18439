#!/usr/bin/env python3
"""transformers on the built-in ViT (datasets/builtin/vit-shapes): loads the folder slimbench
wrote with ViTImageProcessor + ViTForImageClassification (float32) and records its logits for
the first 64 images of builtin:shapes:test in tests/reference/vit/builtin_logits.json.
tests/test_vit_train.c checks slimbench's ViT forward gives the same logits (1e-4) on the
same images, i.e. the HF folder is read by transformers as the trainer meant it.

The images come from slimbench itself (`slimbench data images builtin:shapes:test --limit 64
--write DIR`, binary PPM), so build slimbench first. Run from the repository root:
    make slimbench && python3 tests/reference/vit/check_builtin_vit.py
Rerun it whenever `make builtin-vit` changes the model.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from transformers import ViTForImageClassification, ViTImageProcessor

MODEL = sys.argv[1] if len(sys.argv) > 1 else "datasets/builtin/vit-shapes"
OUT = sys.argv[2] if len(sys.argv) > 2 else "tests/reference/vit/builtin_logits.json"
N = 64


def main():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["./slimbench", "data", "images", "builtin:shapes:test", "--limit", str(N), "--write", tmp],
                       check=True, stdout=subprocess.DEVNULL)
        files = glob.glob(os.path.join(tmp, "*", "*.ppm"))
        files.sort(key=lambda f: int(os.path.basename(f).split(".")[0]))   # back to the set's order
        images = [Image.open(f).convert("RGB") for f in files]
        labels = [os.path.basename(os.path.dirname(f)) for f in files]
    processor = ViTImageProcessor.from_pretrained(MODEL)
    model = ViTForImageClassification.from_pretrained(MODEL, dtype=torch.float32).eval()
    with torch.no_grad():
        inputs = processor(images=images, return_tensors="pt")
        logits = model(**inputs).logits
    pred = [model.config.id2label[int(i)] for i in logits.argmax(-1)]
    acc = float(np.mean([p == t for p, t in zip(pred, labels)]))
    json.dump({"model": MODEL, "images": "builtin:shapes:test", "n": len(images), "accuracy": acc,
               "logits": [[round(float(v), 7) for v in row] for row in logits]}, open(OUT, "w"))
    print(f"{OUT}: {len(images)} images, transformers accuracy {acc:.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
