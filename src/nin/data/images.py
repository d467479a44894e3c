"""Decoding user images (files, bytes, PIL images, arrays, tensors; any PIL mode) into what the models take.

Two steps keep decoding safe and predictable:

1. :func:`open_image` reads a file or bytes with a whitelist of formats, checks the declared size against
   pixel and side caps *before* decoding (Pillow's decompression-bomb guard stays on too), decodes the first
   frame and applies the EXIF orientation, the way a photo viewer shows it.
2. :func:`to_mode` converts any PIL mode to ``L`` or ``RGB``: palette and alpha images are composited on
   white, CMYK goes through its embedded ICC profile (else the multiplicative formula), 16-bit and float
   images are rescaled from their nominal range to 0-255.

:func:`to_pil` turns numpy arrays and tensors into PIL images (uint8/uint16/float/bool, HW, HWC or CHW).
"""

from __future__ import annotations

import io
import logging
import os
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from nin.errors import DataError

log = logging.getLogger(__name__)

# Formats a user may send. EPS/PS (Ghostscript), PDF and the rarer plugins stay out: each plugin is
# attack surface, and a classifier has no use for them.
SAFE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")
# File suffixes of the formats above and the format each names, for picking image files out of a folder and for
# telling what a client's file name says it is.
SUFFIX_FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".gif": "GIF",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
IMAGE_SUFFIXES = tuple(SUFFIX_FORMATS)

FORMAT_MIME: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "WEBP": "image/webp",
    "PPM": "image/x-portable-anymap",
}
DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP: a big phone photo; decoding it needs ~160 MB as RGBA
DEFAULT_MAX_SIDE = 12_000  # px, either side


class ImageDecodeError(DataError):
    """The bytes claim to be an image of an accepted format but cannot be decoded (truncated, corrupt)."""


class UnsupportedImageType(DataError):
    """The bytes are not an image of an accepted format."""


class ImageTooLarge(DataError):
    """The image's declared dimensions exceed the pixel or side cap (a decompression bomb or just too big)."""


def open_image(
    source: str | os.PathLike | bytes | io.IOBase,
    *,
    formats: tuple[str, ...] = SAFE_FORMATS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int = DEFAULT_MAX_SIDE,
) -> Image.Image:
    """Decode one image safely: format whitelist, size caps before decoding, first frame, EXIF orientation.

    Args:
        source: a path, the file's bytes, or a binary file object.
        formats: Pillow format names to accept (others raise :class:`UnsupportedImageType`).
        max_pixels: refuse images with more pixels than this (checked on the header, before decoding).
        max_side: refuse images wider or taller than this.

    Returns:
        The decoded image (mode as stored; see :func:`to_mode`).

    Raises:
        UnsupportedImageType: not an image, or a format outside ``formats``.
        ImageTooLarge: over ``max_pixels`` or ``max_side``.
        ImageDecodeError: an accepted format whose data is truncated or corrupt.
        DataError: a path that does not exist.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        fp: io.IOBase = io.BytesIO(bytes(source))
        name = "image"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise DataError(f"image {path} does not exist or is not a file")
        fp = path.open("rb")
        name = str(path)
    else:
        fp, name = source, getattr(source, "name", "image")
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; make the warning an error too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                img = Image.open(fp, formats=list(formats))
            except UnidentifiedImageError:
                accepted = ", ".join(FORMAT_MIME[f] for f in formats if f in FORMAT_MIME)
                raise UnsupportedImageType(f"{name} is not an image of an accepted type ({accepted})") from None
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise ImageTooLarge(f"{name}: {exc}") from None
            except (OSError, SyntaxError, ValueError) as exc:
                raise ImageDecodeError(f"{name} could not be decoded: {exc}") from None
            w, h = img.size
            if w <= 0 or h <= 0:
                raise ImageDecodeError(f"{name} has an empty size {w}x{h}")
            if w > max_side or h > max_side or w * h > max_pixels:
                raise ImageTooLarge(
                    f"{name} is {w}x{h} pixels; the limit is {max_side} px a side and {max_pixels:,} pixels"
                )
            try:
                img.seek(0)  # animated GIF / multi-page TIFF: the first frame
                img.load()
                img = ImageOps.exif_transpose(img)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise ImageTooLarge(f"{name}: {exc}") from None
            except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
                raise ImageDecodeError(f"{name} could not be decoded: {exc}") from None
    finally:
        if isinstance(source, (str, os.PathLike)):
            fp.close()
    return img


def _rescale_to_u8(a: np.ndarray, nominal_max: float | None) -> np.ndarray:
    """Map ``a`` to 0-255: by its nominal range when known, else by its own min..max (a contrast stretch)."""
    a = a.astype(np.float64)
    if nominal_max is None:
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
    else:
        a = a * (255.0 / nominal_max)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _nominal_max(a: np.ndarray, bits16: bool = False) -> float | None:
    """The full-scale value of an integer or float image: 255, 65535, 1.0, or None (unknown: stretch)."""
    if a.size == 0:
        return 255.0
    lo, hi = float(a.min()), float(a.max())
    if lo < 0:
        return None
    if bits16:
        return 65535.0
    if np.issubdtype(a.dtype, np.floating):
        if hi <= 1.0:
            return 1.0
        return 255.0 if hi <= 255.0 else None
    if hi <= 255:
        return 255.0
    return 65535.0 if hi <= 65535 else None


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    icc = img.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception as exc:  # a broken profile must not lose the image: fall back to the formula
            log.debug("CMYK ICC conversion failed (%s); using the multiplicative formula", exc)
    # Multiplicative CMYK -> RGB (R = (1 - C)(1 - K)); Pillow's own convert() subtracts, which darkens.
    a = np.asarray(img, dtype=np.float64) / 255.0
    rgb = (1.0 - a[..., :3]) * (1.0 - a[..., 3:4]) * 255.0
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL mode to ``L`` (1 channel) or ``RGB`` (3 channels) the way a viewer would show it.

    Palette and LA/RGBA/PA images are composited on white (transparent pixels would otherwise turn black);
    CMYK uses its ICC profile when it has one; LAB goes through a colour-managed conversion; 16-bit images
    (``I;16*``, and ``I`` with values above 255) are scaled from 0-65535, float images from 0-1 or 0-255;
    images outside any nominal range are contrast-stretched.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    target = "L" if channels == 1 else "RGB"
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA")
    elif mode in ("La", "RGBa"):  # premultiplied alpha
        img = img.convert("RGBA" if mode == "RGBa" else "LA")
    if img.mode in ("LA", "RGBA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    elif img.mode.startswith("I;16") or img.mode in ("I", "F"):
        a = np.asarray(img)
        img = Image.fromarray(_rescale_to_u8(a, _nominal_max(a, bits16=img.mode.startswith("I;16"))))
    elif img.mode == "CMYK":
        img = _cmyk_to_rgb(img)
    elif img.mode == "LAB":
        from PIL import ImageCms

        img = ImageCms.applyTransform(
            img, ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
        )
    return img if img.mode == target else img.convert(target)


def to_pil(image) -> Image.Image:
    """A numpy array or tensor (one image) -> PIL image, keeping its channel count.

    Accepted layouts: (H, W), (H, W, C) and (C, H, W) with C in 1, 3, 4 (tensors default to CHW, arrays to
    HWC when ambiguous). dtypes: uint8 as is; uint16 from 0-65535; bool as 0/255; floats from 0-1 when their
    maximum is at most 1, else 0-255; other integers like 16-bit or contrast-stretched.
    """
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 3 and t.shape[0] in (1, 3, 4):
            t = t.permute(1, 2, 0)
        a = t.numpy()
    else:
        a = np.asarray(image)
        if a.ndim == 3 and a.shape[-1] not in (1, 3, 4) and a.shape[0] in (1, 3, 4):
            a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)) or 0 in a.shape:
        raise DataError(f"an image array must be (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4; got {a.shape}")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            raise DataError(f"unsupported image array dtype {a.dtype}")
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            raise DataError("image array contains NaN or infinite values")
        a = _rescale_to_u8(a, _nominal_max(a, bits16=a.dtype == np.uint16))
    return Image.fromarray(np.ascontiguousarray(a))  # L, RGB or RGBA from the shape


def pil_to_tensor(img: Image.Image, channels: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """PIL image -> uint8 tensor (C, H, W), converted to ``channels`` and resized (bilinear) to ``size`` (H, W)."""
    img = to_mode(img, channels)
    if size is not None and (img.height, img.width) != tuple(size):
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    a = np.asarray(img, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(a.transpose(2, 0, 1).copy())
