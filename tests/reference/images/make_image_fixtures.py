#!/usr/bin/env python3
"""Fixtures for the image loaders and image-quality metrics (tests/test_images.c).

Writes, under tests/reference/images/:
  folder/<class>/*      PNG (RGB, grey, palette) and binary PPM/PGM files written by Pillow,
                        and expected_folder.json: what Pillow decodes each to (mode RGB or L)
  cifar10/data_batch_1.bin + batches.meta.txt, cifar100/train.bin + fine_label_names.txt,
  mnist/train-*-ubyte   tiny batches in the official layouts, and expected_binary.json with
                        the images as torchvision decodes them (CHW planes -> HWC)
  bad/                  a truncated PNG, a CIFAR batch that is not whole records, IDX files
                        with a bad magic and with counts that disagree
  quality/ref, quality/dist and expected_quality.json: image pairs (noise, blur, shift,
                        contrast) with scikit-image's MSE, PSNR (data_range=255) and SSIM
                        (gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                        data_range=255, channel_axis=2 for RGB)

Run from the repository root:  pip install scikit-image pillow numpy; python3 tests/reference/images/make_image_fixtures.py
Deterministic (fixed seeds); versions used: see README.md beside this script.
"""
import json
import os
import shutil

import numpy as np
from PIL import Image, ImageFilter
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20261125)


def out(*parts):
    p = os.path.join(HERE, *parts)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


def folder_fixtures():
    shutil.rmtree(os.path.join(HERE, "folder"), ignore_errors=True)
    files = []
    rgb = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb, "RGB").save(out("folder", "cat", "a_rgb.png"))
    grey = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    Image.fromarray(grey, "L").save(out("folder", "cat", "b_grey.png"))
    Image.fromarray(rgb[:4, :5], "RGB").save(out("folder", "cat", "c.ppm"))
    pal = Image.fromarray(rng.integers(0, 256, (9, 4, 3), dtype=np.uint8), "RGB").quantize(colors=5)
    pal.save(out("folder", "dog", "a_palette.png"))
    Image.fromarray(grey[:3, :6], "L").save(out("folder", "dog", "b.pgm"))
    with open(out("folder", "dog", "notes.txt"), "w") as f:   # not an image: skipped
        f.write("skip me\n")
    for label, cls in enumerate(["cat", "dog"]):
        for name in sorted(os.listdir(os.path.join(HERE, "folder", cls))):
            if name.endswith(".txt"):
                continue
            im = Image.open(os.path.join(HERE, "folder", cls, name))
            mode = "L" if im.mode in ("L", "I;16") else "RGB"
            a = np.asarray(im.convert(mode))
            files.append({"file": f"{cls}/{name}", "label": label, "width": a.shape[1], "height": a.shape[0],
                          "channels": 1 if mode == "L" else 3, "pixels": a.tobytes().hex()})
    json.dump({"classes": ["cat", "dog"], "images": files}, open(out("expected_folder.json"), "w"), indent=1)


def binary_fixtures():
    expect = {}
    # CIFAR-10: label byte + 3072 planar bytes per record
    labels = [3, 0, 9]
    planes = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    with open(out("cifar10", "data_batch_1.bin"), "wb") as f:
        for lab, img in zip(labels, planes):
            f.write(bytes([lab]) + img.tobytes())
    names10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    open(out("cifar10", "batches.meta.txt"), "w").write("\n".join(names10) + "\n\n")
    expect["cifar10"] = {"labels": labels, "names": names10,
                         "pixels": [p.transpose(1, 2, 0).tobytes().hex() for p in planes]}
    # CIFAR-100: coarse + fine label bytes + 3072 bytes
    fine, coarse = [42, 99], [7, 19]
    planes100 = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
    with open(out("cifar100", "train.bin"), "wb") as f:
        for c, lab, img in zip(coarse, fine, planes100):
            f.write(bytes([c, lab]) + img.tobytes())
    expect["cifar100"] = {"labels": fine, "pixels": [p.transpose(1, 2, 0).tobytes().hex() for p in planes100]}
    # MNIST IDX: 3 images of 5 rows x 4 columns
    imgs = rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)
    mlabels = [7, 2, 1]
    with open(out("mnist", "train-images-idx3-ubyte"), "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + np.array([3, 5, 4], ">u4").tobytes() + imgs.tobytes())
    with open(out("mnist", "train-labels-idx1-ubyte"), "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + np.array([3], ">u4").tobytes() + bytes(mlabels))
    expect["mnist"] = {"labels": mlabels, "pixels": [i.tobytes().hex() for i in imgs]}
    json.dump(expect, open(out("expected_binary.json"), "w"), indent=1)


def bad_fixtures():
    png = open(os.path.join(HERE, "folder", "cat", "a_rgb.png"), "rb").read()
    open(out("bad", "truncated", "x", "cut.png"), "wb").write(png[: len(png) // 2])
    open(out("bad", "data_batch_9.bin"), "wb").write(bytes(3073 * 2 + 5))
    open(out("bad", "magic-images-idx3-ubyte"), "wb").write(bytes([0, 0, 8, 4]) + np.array([1, 2, 2], ">u4").tobytes() + bytes(4))
    open(out("bad", "magic-labels-idx1-ubyte"), "wb").write(bytes([0, 0, 8, 1]) + np.array([1], ">u4").tobytes() + bytes(1))
    open(out("bad", "count-images-idx3-ubyte"), "wb").write(bytes([0, 0, 8, 3]) + np.array([2, 2, 2], ">u4").tobytes() + bytes(8))
    open(out("bad", "count-labels-idx1-ubyte"), "wb").write(bytes([0, 0, 8, 1]) + np.array([3], ">u4").tobytes() + bytes(3))


def distort(ref, kind):
    f = ref.astype(np.float64)
    if kind == "noise":
        f = f + rng.normal(0, 12, f.shape)
    elif kind == "blur":
        mode = "L" if ref.ndim == 2 else "RGB"
        return np.asarray(Image.fromarray(ref, mode).filter(ImageFilter.GaussianBlur(1.2)))
    elif kind == "shift":
        f = np.roll(f, 1, axis=1)
    elif kind == "contrast":
        f = (f - 128) * 0.7 + 140
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def smooth_image(h, w, c):
    """A structured image (gradients, a disc, texture) so SSIM's terms all matter."""
    y, x = np.mgrid[0:h, 0:w]
    base = [60 + 120 * x / w + 40 * np.sin(y / 3.0), 200 - 150 * y / h + 30 * np.cos(x / 2.5),
            100 + 80 * ((x - w / 2) ** 2 + (y - h / 2) ** 2 < (min(h, w) / 3) ** 2)]
    chans = [np.clip(base[k % 3] + rng.normal(0, 6, (h, w)), 0, 255) for k in range(c)]
    a = np.stack(chans, -1) if c > 1 else chans[0]
    return np.rint(a).astype(np.uint8)


def quality_fixtures():
    shutil.rmtree(os.path.join(HERE, "quality"), ignore_errors=True)
    cases = [("p0_noise", 32, 32, 3, "noise"), ("p1_blur", 20, 24, 1, "blur"), ("p2_shift", 11, 11, 3, "shift"),
             ("p3_contrast", 40, 50, 3, "contrast"), ("p4_blur", 33, 17, 3, "blur"), ("p5_noise", 16, 12, 1, "noise")]
    rows = []
    for name, h, w, c, kind in cases:
        ref = smooth_image(h, w, c)
        dist = distort(ref, kind)
        mode = "L" if c == 1 else "RGB"
        Image.fromarray(ref, mode).save(out("quality", "ref", "x", name + ".png"))
        Image.fromarray(dist, mode).save(out("quality", "dist", "x", name + ".png"))
        ssim = structural_similarity(ref, dist, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255, channel_axis=2 if c > 1 else None)
        rows.append({"name": name, "mse": float(mean_squared_error(ref, dist)),
                     "psnr": float(peak_signal_noise_ratio(ref, dist, data_range=255)), "ssim": float(ssim)})
    json.dump(rows, open(out("expected_quality.json"), "w"), indent=1)


if __name__ == "__main__":
    folder_fixtures()
    binary_fixtures()
    bad_fixtures()
    quality_fixtures()
