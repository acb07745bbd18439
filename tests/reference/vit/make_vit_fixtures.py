#!/usr/bin/env python3
"""Tiny random ViT and DeiT image classifiers + reference outputs for slimbench.

Run from the repository root:

    python3 tests/reference/vit/make_vit_fixtures.py

For each model (vit, vit_bicubic_crop, deit, vit_shapes, deit_distilled) writes tests/reference/vit/<name>/ with
config.json, model.safetensors, preprocessor_config.json (what
save_pretrained writes) and:
  image.rgb        the test image: raw HWC uint8 bytes (size in reference.json)
  pixels.f32       the processor's pixel_values [C, H, W] float32
  logits.f32       the model's logits for pixels.f32 [num_labels] float32
  reference.json   shapes, versions, notes

The image processor is PINNED to the slow PIL-based one (use_fast=False):
transformers 5 defaults to the torchvision "fast" processor whose resize
differs from PIL's.  slimbench implements PIL's resampling (Pillow
Resample.c: separable filter with support scaled by the downscale factor,
i.e. antialiased, 22-bit fixed-point coefficients, uint8 rounding after
each pass), so pixels must match within float rounding.

Deterministic: fixed seeds, CPU, float32, one thread.
Versions: torch 2.15, transformers 5.24, pillow 13.0, numpy.
"""

import json
import math
import os
import shutil

import numpy as np
import PIL
import torch
import transformers
from transformers import (
    DeiTConfig,
    DeiTForImageClassification,
    DeiTForImageClassificationWithTeacher,
    DeiTImageProcessor,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessor,
)

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
transformers.logging.set_verbosity_error()


def reinit_(model, seed):
    """Weights N(0, 1/fan_in), norm weights 1 + N(0, 0.2^2), biases and
    embeddings / tokens N(0, 0.1^2) / N(0, 0.5^2): every term matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            shape = tuple(p.shape)
            if "cls_token" in name or "distillation_token" in name or "position_embeddings" in name:
                p.copy_(0.5 * torch.randn(shape, generator=g))
            elif p.dim() >= 2:
                fan_in = int(np.prod(shape[1:]))
                p.copy_(torch.randn(shape, generator=g) / math.sqrt(fan_in))
            elif "layernorm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn(shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(shape, generator=g))


def test_image(seed, h, w):
    """A smooth pattern plus noise, so resizing has edges and gradients to get right."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([
        127 + 120 * np.sin(x / 3.1 + y / 5.3),
        255 * (x / max(w - 1, 1)),
        (x * 7 + y * 13) % 256,
    ], axis=-1)
    img = img + rng.normal(0, 20, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def save(name, model, processor, img, notes):
    d = os.path.join(HERE, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    model.eval()
    model.save_pretrained(d, safe_serialization=True)
    processor.save_pretrained(d)
    # reload both as a user would, the processor pinned to the slow (PIL) one
    cls = type(model)
    ref = cls.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    proc = type(processor).from_pretrained(d, use_fast=False)
    assert not getattr(proc, "is_fast", False)
    pixels = proc(images=img, return_tensors="pt")["pixel_values"]  # [1, C, H, W]
    with torch.no_grad():
        logits = ref(pixel_values=pixels).logits[0].float()
    assert torch.isfinite(logits).all() and logits.std() > 0.3, (name, logits)
    img.tofile(os.path.join(d, "image.rgb"))
    pixels[0].numpy().astype("<f4").tofile(os.path.join(d, "pixels.f32"))
    logits.numpy().astype("<f4").tofile(os.path.join(d, "logits.f32"))
    refj = {
        "arch": model.config.model_type,
        "image_file": "image.rgb", "image_hwc": list(img.shape),
        "pixels_file": "pixels.f32", "pixels_chw": list(pixels.shape[1:]),
        "logits_file": "logits.f32", "num_labels": int(logits.shape[0]),
        "processor": type(proc).__name__ + " (slow, PIL resampling)",
        "transformers_version": transformers.__version__, "torch_version": torch.__version__,
        "pillow_version": PIL.__version__, "notes": notes,
    }
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(refj, f, indent=2)
        f.write("\n")
    print(f"  {name:18s} pixels {tuple(pixels.shape)} logits {logits.numpy().round(3)}")


def labels(n):
    return {i: f"class_{chr(97 + i)}" for i in range(n)}


def main():
    # ViT: resize (bilinear, antialiased when shrinking) straight to 32x32, no crop.
    cfg = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=64, hidden_act="gelu", layer_norm_eps=1e-12,
                    qkv_bias=True, num_labels=5, id2label=labels(5), label2id={v: k for k, v in labels(5).items()})
    torch.manual_seed(0)
    m = ViTForImageClassification(cfg)
    reinit_(m, 1)
    p = ViTImageProcessor(size={"height": 32, "width": 32}, resample=PIL.Image.BILINEAR,
                          image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.25, 0.3])
    save("vit", m, p, test_image(2, 45, 53), "ViTForImageClassification; bilinear downscale 45x53 -> 32x32")

    # ViT with a bicubic upscale-then-crop pipeline (shortest_edge resize, center crop).
    torch.manual_seed(0)
    m = ViTForImageClassification(cfg)
    reinit_(m, 3)
    p = DeiTImageProcessor(size={"height": 40, "width": 40}, resample=PIL.Image.BICUBIC, do_center_crop=True,
                           crop_size={"height": 32, "width": 32}, image_mean=[0.485, 0.456, 0.406],
                           image_std=[0.229, 0.224, 0.225])
    save("vit_bicubic_crop", m, p, test_image(4, 23, 29),
         "ViT with DeiT's processor: bicubic 23x29 -> 40x40 (upscale: no antialias widening), center crop 32")

    # DeiT (distilled): CLS + distillation token, classifier on the CLS row.
    dcfg = DeiTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=3,
                      num_attention_heads=2, intermediate_size=48, hidden_act="gelu", layer_norm_eps=1e-12,
                      qkv_bias=True, num_labels=4, id2label=labels(4), label2id={v: k for k, v in labels(4).items()})
    torch.manual_seed(0)
    m = DeiTForImageClassification(dcfg)
    reinit_(m, 5)
    p = DeiTImageProcessor(size={"height": 36, "width": 36}, resample=PIL.Image.BICUBIC, do_center_crop=True,
                           crop_size={"height": 32, "width": 32})
    save("deit", m, p, test_image(6, 61, 50), "DeiTForImageClassification; bicubic 61x50 -> 36x36, crop 32")
    shapes_model()

    # DeiT distilled ("WithTeacher", the facebook/deit-*-distilled checkpoints): logits are the
    # mean of the class-token head and the distillation-token head.
    torch.manual_seed(0)
    m = DeiTForImageClassificationWithTeacher(dcfg)
    reinit_(m, 9)
    p = DeiTImageProcessor(size={"height": 36, "width": 36}, resample=PIL.Image.BICUBIC, do_center_crop=True,
                           crop_size={"height": 32, "width": 32})
    save("deit_distilled", m, p, test_image(10, 40, 44),
         "DeiTForImageClassificationWithTeacher: (cls_classifier(cls) + distillation_classifier(dist)) / 2")


SHAPES = ["circle", "square", "triangle", "ring", "dots", "hstripes", "vstripes", "checkerboard", "cross",
          "gradient"]  # datasets/image_synth.c's builtin:shapes classes, in label order


def shapes_model():
    """A random (untrained) ViT whose id2label names builtin:shapes' classes, so the
    image-classification task runs end to end on the built-in set in the CLI tests."""
    n = len(SHAPES)
    id2label = {i: c for i, c in enumerate(SHAPES)}
    cfg = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=4, intermediate_size=64, num_labels=n, id2label=id2label,
                    label2id={c: i for i, c in id2label.items()})
    torch.manual_seed(0)
    m = ViTForImageClassification(cfg)
    reinit_(m, 7)
    p = ViTImageProcessor(size={"height": 32, "width": 32}, resample=PIL.Image.BILINEAR)
    save("vit_shapes", m, p, test_image(8, 32, 32), "random ViT labelled with builtin:shapes' classes; 32x32 input, no resize")


if __name__ == "__main__":
    main()
