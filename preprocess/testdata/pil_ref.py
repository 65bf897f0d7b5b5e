#!/usr/bin/env python3
"""Reference outputs of PIL + torchvision for preprocess's Go tests.

Usage: pil_ref.py OUTDIR

Finds real photos from Debian packages (python-matplotlib-data's grace_hopper.jpg,
python3-skimage's data images), writes them and variants made with PIL (EXIF
orientations, CMYK, palette, 16-bit, alpha, WebP, BMP, GIF, ...) into OUTDIR, and
for each image the PIL pipeline's results:

  NAME.rgb             exif_transpose(open(NAME)).convert("RGB") as raw bytes
  NAME.WxH.rgb         ... .resize((W, H), Image.BICUBIC)
  NAME.WxH.NORM.f32    Normalize(NORM)(ToTensor()(resized)) as raw float32 (CHW)

and OUTDIR/manifest.json describing them. Fails loudly when a source is missing.

Where the Debian packages are not installed (a GPU machine with a PyTorch wheel), OFASERVE_PARITY_SOURCES
names a folder holding the same source files (grace_hopper.jpg and the skimage data images, copied there
by `make gpu-tests`); without torchvision, ToTensor + Normalize are computed with the same torch
operations in the same order.
"""
import glob
import io
import json
import os
import struct
import subprocess
import sys
import warnings
import zlib
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
from PIL import Image, ImageOps

try:
    from torchvision import transforms
except ImportError:  # a GPU box's wheel without torchvision: the same operations below
    transforms = None

NORMS = {
    "ofa": ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    "imagenet": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
}

# The source photos: grace_hopper.jpg from python-matplotlib-data, the rest from python3-skimage's data.
SKIMAGE_FILES = ["astronaut.png", "chelsea.png", "coffee.png", "camera.png", "coins.png", "horse.png", "logo.png",
                 "green_palette.png", "palette_color.png", "foo3x5x4indexed.png", "checker_bilevel.png",
                 "rocket.jpg", "hubble_deep_field.jpg", "no_time_for_that_tiny.gif"]

# Images whose tensors are also checked at 480x480 (OFA) and 256x256 (ImageNet
# mean/std); every image is checked at 224x224 (OFA). Keeps the temp dir small.
BIG_TENSORS = {"photo_640x480_q90.jpg", "grace_hopper.jpg", "astro_rgba.png", "chelsea_exif6.jpg",
               "astro_gray16.png", "astro_cmyk_adobe.jpg"}


def dpkg_files(*pkgs: str) -> List[str]:
    out = subprocess.run(["dpkg", "-L", *pkgs], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"pil_ref.py: dpkg -L {' '.join(pkgs)} failed (install them: scripts/dev/setup.sh): {out.stderr}")
    return out.stdout.split()


def find(files: List[str], suffix: str) -> str:
    for f in files:
        if f.endswith(suffix) and os.path.isfile(f):
            return f
    sys.exit(f"pil_ref.py: {suffix} not found in Debian packages (run scripts/dev/setup.sh)")


def png_chunk(typ: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + typ + data + struct.pack(">I", zlib.crc32(typ + data) & 0xFFFFFFFF)


def raw_png(w: int, h: int, depth: int, color: int, rows: bytes, extra: List[Tuple[bytes, bytes]] = ()) -> bytes:
    """A PNG written by hand, for layouts PIL cannot save (16-bit RGB, short palettes...)."""
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
    for typ, data in extra:
        out += png_chunk(typ, data)
    return out + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")


def rows_of(a: np.ndarray) -> bytes:
    """Filter-type-0 rows of a big-endian array (H, W*samples)."""
    return b"".join(b"\x00" + r.tobytes() for r in a)


def exif_with_orientation(o: int) -> bytes:
    e = Image.Exif()
    e[0x0112] = o
    return e.tobytes()


def sources() -> Tuple[str, str]:
    """grace_hopper.jpg and the folder of the skimage images: OFASERVE_PARITY_SOURCES, else Debian's."""
    env = os.environ.get("OFASERVE_PARITY_SOURCES")
    if env:
        for f in ["grace_hopper.jpg"] + SKIMAGE_FILES:
            if not os.path.isfile(os.path.join(env, f)):
                sys.exit(f"pil_ref.py: OFASERVE_PARITY_SOURCES={env} lacks {f}")
        return os.path.join(env, "grace_hopper.jpg"), env
    mpl = dpkg_files("python-matplotlib-data")
    ski = dpkg_files("python3-skimage")
    return find(mpl, "/grace_hopper.jpg"), os.path.dirname(find(ski, "/skimage/data/astronaut.png"))


def to_normalized(img: Image.Image, mean: List[float], std: List[float]) -> torch.Tensor:
    """torchvision's Normalize(mean, std)(ToTensor()(img)) for an RGB image."""
    if transforms is not None:
        return transforms.Normalize(mean, std)(transforms.ToTensor()(img))
    t = torch.from_numpy(np.array(img, np.uint8, copy=True)).permute((2, 0, 1)).contiguous()
    t = t.to(dtype=torch.get_default_dtype()).div(255)
    m = torch.as_tensor(mean, dtype=t.dtype).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=t.dtype).view(-1, 1, 1)
    return t.sub_(m).div_(s)


def make_images(out: str) -> List[Tuple[str, List[Tuple[int, int]]]]:
    """Writes the test images; returns (file name, extra target sizes)."""
    hopper, data = sources()
    cases: List[Tuple[str, List[Tuple[int, int]]]] = []

    def save(name: str, img: Image.Image, sizes: List[Tuple[int, int]] = (), **kw: Any) -> None:
        img.save(os.path.join(out, name), **kw)
        cases.append((name, list(sizes)))

    def copy(name: str, src: str, sizes: List[Tuple[int, int]] = ()) -> None:
        with open(src, "rb") as f, open(os.path.join(out, name), "wb") as g:
            g.write(f.read())
        cases.append((name, list(sizes)))

    def raw(name: str, blob: bytes, sizes: List[Tuple[int, int]] = ()) -> None:
        with open(os.path.join(out, name), "wb") as g:
            g.write(blob)
        cases.append((name, list(sizes)))

    # Real photos as shipped.
    copy("grace_hopper.jpg", hopper, [(256, 700)])
    for f in SKIMAGE_FILES:
        copy(f, os.path.join(data, f))

    astro = Image.open(os.path.join(data, "astronaut.png")).convert("RGB")
    chelsea = Image.open(os.path.join(data, "chelsea.png")).convert("RGB")  # 451x300: orientation shows
    photo = astro.resize((640, 480), Image.BICUBIC)  # the benchmark's shape

    # JPEG flavours.
    save("photo_640x480_q90.jpg", photo, quality=90)
    save("astro_420.jpg", astro, quality=90, subsampling=2)
    save("astro_422.jpg", astro, quality=90, subsampling=1)
    save("astro_444.jpg", astro, quality=90, subsampling=0)
    save("astro_progressive.jpg", astro, quality=85, progressive=True)
    save("chelsea_odd_397x296_q75.jpg", chelsea.resize((397, 296)), quality=75)
    save("camera_gray.jpg", Image.open(os.path.join(data, "camera.png")).convert("L"), quality=90)
    save("astro_cmyk_adobe.jpg", astro.convert("CMYK"), quality=90)  # PIL writes Adobe (inverted) CMYK
    save("chelsea_cmyk_adobe.jpg", chelsea.convert("CMYK"), quality=80, progressive=True)

    # EXIF orientations 1..8 (and an out-of-range value) on a non-square photo.
    for o in range(1, 10):
        save(f"chelsea_exif{o}.jpg", chelsea, [(300, 451)], quality=90, exif=exif_with_orientation(o))
    save("chelsea_exif6.png", chelsea, exif=exif_with_orientation(6))
    save("chelsea_exif8.webp", chelsea, exif=exif_with_orientation(8), quality=90)

    # PNG modes.
    save("astro_rgba.png", Image.merge("RGBA", (*astro.split(), astro.convert("L").point(lambda v: 255 - v))))
    save("astro_la.png", Image.merge("LA", (astro.convert("L"), astro.convert("L").point(lambda v: v // 2))))
    save("astro_p.png", astro.convert("P", palette=Image.ADAPTIVE, colors=200))
    save("astro_p_trns.png", astro.convert("P", palette=Image.ADAPTIVE, colors=64), transparency=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = Image.merge("RGBA", (*astro.split(), astro.convert("L"))).quantize(colors=100)
    save("astro_p_trns_bytes.png", q)
    save("astro_1bit.png", astro.convert("1"))
    g16 = (np.array(astro.convert("L"), dtype=np.uint16) * 3).astype(">u2")  # 0..765: some clamp
    raw("astro_gray16.png", raw_png(512, 512, 16, 0, rows_of(g16)))
    raw("astro_gray16_trns.png", raw_png(512, 512, 16, 0, rows_of(g16), [(b"tRNS", b"\x00\x10")]))
    a = np.array(astro, dtype=np.uint16)
    rgb16 = (a * 257 + (np.arange(512)[None, :, None] % 200)).astype(">u2").reshape(512, -1)
    raw("astro_rgb16.png", raw_png(512, 512, 16, 2, rows_of(rgb16)))
    rgba16 = np.concatenate([a * 251, np.full((512, 512, 1), 30000, np.uint16)], axis=2).astype(">u2")
    raw("astro_rgba16.png", raw_png(512, 512, 16, 6, rows_of(rgba16.reshape(512, -1))))
    la16 = np.stack([a[:, :, 1] * 256, a[:, :, 2] * 256], axis=2).astype(">u2")
    raw("astro_la16.png", raw_png(512, 512, 16, 4, rows_of(la16.reshape(512, -1))))
    idx = (np.arange(37 * 23).reshape(23, 37) % 256).astype(np.uint8)
    raw("short_palette.png", raw_png(37, 23, 8, 3, rows_of(idx), [(b"PLTE", bytes([10, 20, 30, 40, 50, 60]))]),
        [(60, 10)])
    gray4 = (np.arange(40 * 30).reshape(30, 40) % 16).astype(np.uint8)
    raw("gray4bit.png", raw_png(40, 30, 4, 0, rows_of(np.left_shift(gray4[:, 0::2], 4) | gray4[:, 1::2])))

    # WebP, BMP, GIF.
    save("astro_lossless.webp", astro, lossless=True)
    save("astro_lossy.webp", astro, quality=80)
    save("chelsea_odd_lossy.webp", chelsea.resize((397, 297)), quality=70)
    save("astro_lossy_alpha.webp", Image.open(os.path.join(out, "astro_rgba.png")), quality=80)
    save("chelsea.bmp", chelsea)
    save("astro_p.bmp", astro.convert("P", palette=Image.ADAPTIVE, colors=256))
    save("astro.gif", astro.convert("P", palette=Image.ADAPTIVE, colors=128))
    save("astro_trns.gif", astro.convert("P", palette=Image.ADAPTIVE, colors=128), transparency=5)
    return cases


def main() -> None:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    cases = make_images(out)
    base_sizes = [(480, 480), (256, 256), (224, 224)]
    manifest: List[Dict[str, Any]] = []
    for name, extra in cases:
        path = os.path.join(out, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        w, h = im.size
        with open(path + ".rgb", "wb") as f:
            f.write(im.tobytes())
        # Shrink one axis and grow the other, whatever the photo's shape.
        mixed = (max(1, w * 2 // 3), h * 3 // 2 + 1)
        sizes = base_sizes + [mixed] + extra
        entry: Dict[str, Any] = {"file": name, "width": w, "height": h, "sizes": [], "tensors": []}
        for sw, sh in sizes:
            r = im.resize((sw, sh), Image.BICUBIC)
            with open(f"{path}.{sw}x{sh}.rgb", "wb") as f:
                f.write(r.tobytes())
            entry["sizes"].append([sw, sh])
            tensor_norms = []
            if (sw, sh) == (224, 224) or ((sw, sh) == (480, 480) and name in BIG_TENSORS):
                tensor_norms.append("ofa")
            if (sw, sh) == (256, 256) and name in BIG_TENSORS:
                tensor_norms.append("imagenet")
            for norm in tensor_norms:
                mean, std = NORMS[norm]
                t = to_normalized(r, mean, std)
                assert t.dtype == torch.float32 and t.shape == (3, sh, sw)
                with open(f"{path}.{sw}x{sh}.{norm}.f32", "wb") as f:
                    f.write(t.contiguous().numpy().astype("<f4").tobytes())
                entry["tensors"].append({"width": sw, "height": sh, "norm": norm, "mean": mean, "std": std})
        manifest.append(entry)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
