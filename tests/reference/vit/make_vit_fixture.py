#!/usr/bin/env python3
"""PyTorch reference for the ViT trainer (tests/test_vit_train.c).

Builds a tiny transformers ViTForImageClassification (image 8, patch 4, 3 channels, hidden 8,
2 layers, 2 heads, intermediate 16, 4 labels, eager attention, no dropout), redraws every
weight so each term matters (N(0, 0.4^2); LayerNorm weights 1 + N(0, 0.2^2)), and writes to
tests/reference/vit/:
  tiny/             the model as save_pretrained writes it (config.json, model.safetensors f32)
  images.bin        3 random 8x8 RGB images, uint8 HWC, one after the other
  grads.safetensors d(loss)/d(parameter) for every parameter, under the parameter's name
  expected.json     labels, loss and logits
The images are normalised as ViTImageProcessor does with mean = std = 0.5:
x = (p / 255 - 0.5) / 0.5, then NCHW.

Run from the repository root (CPU, ~3 s):  python3 tests/reference/vit/make_vit_fixture.py
Versions used: torch 2.15, transformers 5.24, safetensors 0.8 (see tests/reference/README.md).
"""
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import ViTConfig, ViTForImageClassification

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    cfg = ViTConfig(image_size=8, patch_size=4, num_channels=3, hidden_size=8, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=16, hidden_act="gelu", layer_norm_eps=1e-6,
                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, qkv_bias=True, num_labels=4)
    cfg._attn_implementation = "eager"
    model = ViTForImageClassification(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layernorm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.4 * torch.randn_like(p))
    model.save_pretrained(os.path.join(HERE, "tiny"), safe_serialization=True)

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    images.tofile(os.path.join(HERE, "images.bin"))
    labels = torch.tensor([0, 1, 2])
    x = torch.from_numpy(images).float() / 255.0
    x = ((x - 0.5) / 0.5).permute(0, 3, 1, 2).contiguous()
    out = model(pixel_values=x, labels=labels)
    out.loss.backward()
    # transformers 5 names parameters in memory differently from the checkpoint
    # (vit.layers.0.attention.q_proj vs vit.encoder.layer.0.attention.attention.query):
    # each gradient is stored under the on-disk name of the tensor equal to its parameter.
    from safetensors.torch import load_file
    disk = load_file(os.path.join(HERE, "tiny", "model.safetensors"))
    grads = {}
    for n, p in model.named_parameters():
        match = [k for k, t in disk.items() if t.shape == p.shape and torch.equal(t, p.detach())]
        assert len(match) == 1, (n, match)
        grads[match[0]] = p.grad.detach().contiguous()
    save_file(grads, os.path.join(HERE, "grads.safetensors"))
    json.dump({"labels": labels.tolist(), "loss": out.loss.item(), "logits": out.logits.detach().tolist()},
              open(os.path.join(HERE, "expected.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
