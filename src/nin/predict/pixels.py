"""One image file straight into its place in a pre-allocated uint8 batch, as ``Predictor.prepare_one`` decodes it.

``Predictor.prepare_one`` is the one definition of what the model sees: :func:`nin.data.images.open_image` (format
whitelist, size caps, first frame, EXIF orientation) and then the preprocessor's ``prepare_image`` (mode and
geometry). For a small image most of its time is spent around the decoder rather than in it: a warnings context
per call, a search over the seven accepted formats, an EXIF transpose that copies the image when there is nothing
to turn, a tensor made per image and then stacked into the batch. :func:`decode_into` takes a shorter road for the
two formats that fill image folders, PNG and JPEG, and writes the result into the caller's batch slot:

- the file's first bytes pick the Pillow plugin (PNG, then JPEG: the order ``open_image`` tries them in), which
  reads the header; the size caps of ``open_image`` and Pillow's own decompression-bomb limit are checked on
  that header before anything is decoded;
- the first frame is decoded, and the image is turned by its EXIF orientation only when it has one other than 1;
- the preprocessor's geometry runs on the image as ``prepare_one`` runs it (the base recipe's mode conversion and
  bilinear resize inline, any other recipe's ``prepare_image`` itself), and the pixels are written into the slot.

The pixels are the ones ``prepare_one`` gives, bit for bit (tested on every format and mode the suite has). Any
other format, and any file for which the short road fails at any step, goes through ``prepare_one`` itself, so
error rows carry the very messages they always had.

**JPEG draft** (``draft=True``, ``nin predict --jpeg-draft``): libjpeg can decode a JPEG at 1/2, 1/4 or 1/8 of
its size by scaling its DCT blocks, for a fraction of the cost of a full decode (PIL's ``Image.draft``). Applied
only when the image is at least twice the size the recipe resizes to (so the preprocessor's own resize still does
the last step, from at least the size it asks for), it changes the pixels: the reduction averages blocks where
the full decode followed by the recipe's bilinear resize samples them. That is not the model's preprocessing, so
it is off unless asked for; docs/batch-predict.md has its measured effect on pixels and probabilities.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image, ImageOps

from nin.data.imagenet_preprocess import ImageNetPreprocess
from nin.data.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, to_mode
from nin.data.preprocess_base import Preprocessor
from nin.errors import NinError

# The formats of the short road, in the order open_image tries them (nin.data.images.SAFE_FORMATS starts so).
FAST_FORMATS = ("PNG", "JPEG")
_ORIENTATION = 0x0112  # EXIF tag


def describe_failure(path: str, exc: Exception) -> str:
    """One line for an error row: why this file has no prediction."""
    if not os.path.lexists(path):
        return f"{path} does not exist"
    if os.path.isdir(path):
        return f"{path} is a folder, not an image file"
    if isinstance(exc, NinError):
        return str(exc)
    return f"{path}: {type(exc).__name__}: {exc}".splitlines()[0]


def draft_size(preprocessor: Preprocessor, input_shape: tuple[int, int, int]) -> tuple[int, int] | None:
    """The (width, height) a recipe resizes an image to before any crop: what a JPEG draft must keep at least.

    ``None`` for a recipe whose geometry this module does not know (a registered recipe of your own): no draft.
    """
    _, h, w = input_shape
    if isinstance(preprocessor, ImageNetPreprocess):
        if preprocessor.resize == "direct":
            return (w, h)
        # warp_crop goes to resize_size square; shorter_crop brings the shorter side to resize_size.
        return (preprocessor.resize_size, preprocessor.resize_size)
    if type(preprocessor).prepare_image is Preprocessor.prepare_image:
        return (w, h)
    return None


def _open_fast(path: str, draft: tuple[int, int] | None) -> Image.Image | None:
    """The decoded first frame of a PNG or JPEG within the caps, EXIF-oriented; ``None``: take ``prepare_one``."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after the decoder has read what it needs
    except OSError:
        return None
    try:
        prefix = f.read(16)
        if not all(fmt in Image.OPEN for fmt in FAST_FORMATS):
            Image.preinit()  # imports Pillow's common plugins, as Image.open does on its first call
        for fmt in FAST_FORMATS:
            factory, accept = Image.OPEN[fmt]
            if accept(prefix):
                break
        else:
            return None
        f.seek(0)
        img = factory(f, "")
        w, h = img.size
        if w <= 0 or h <= 0 or w > DEFAULT_MAX_SIDE or h > DEFAULT_MAX_SIDE or w * h > DEFAULT_MAX_PIXELS:
            return None  # open_image refuses it, in its own words
        if Image.MAX_IMAGE_PIXELS is not None and w * h > Image.MAX_IMAGE_PIXELS:
            return None  # Pillow's decompression-bomb limit (lowered by the program): open_image's error
        if draft is not None and fmt == "JPEG" and w >= 2 * draft[0] and h >= 2 * draft[1]:
            img.draft(None, draft)
        img.seek(0)
        img.load()
        if _may_have_exif(img) and img.getexif().get(_ORIENTATION, 1) != 1:
            img = ImageOps.exif_transpose(img)
        return img
    # Whatever fails here fails again in prepare_one, which words the error row.
    except Exception:
        return None
    finally:
        f.close()


def _may_have_exif(img: Image.Image) -> bool:
    """False only when ``getexif`` must come back empty: it reads the decoded image's ``info`` (EXIF, PNG text, XMP)
    or a TIFF's tags, so an image with neither has no orientation (most small PNGs; 8 us saved per file)."""
    return bool(img.info) or hasattr(img, "tag_v2")


def _geometry_into(img: Image.Image, preprocessor: Preprocessor, slot: torch.Tensor) -> None:
    """The recipe's ``prepare_image`` of ``img``, written into ``slot`` (uint8 (C, H, W))."""
    c, h, w = slot.shape
    if type(preprocessor).prepare_image is Preprocessor.prepare_image:  # pil_to_tensor, without the extra tensor
        img = to_mode(img, c)
        if (img.height, img.width) != (h, w):
            img = img.resize((w, h), Image.BILINEAR)
        # tobytes: L or RGB rows, interleaved; half the cost of np.asarray's array interface on a small image.
        a = np.frombuffer(img.tobytes(), dtype=np.uint8).reshape(h, w, c)
        slot.numpy()[...] = a.transpose(2, 0, 1)
        return
    x = preprocessor.prepare_image(img, c, (h, w))
    if tuple(x.shape) != (c, h, w) or x.dtype != torch.uint8:
        raise RuntimeError(f"prepare_image returned {x.dtype} {tuple(x.shape)}, expected uint8 {(c, h, w)}")
    slot.copy_(x)


def decode_into(host, path: str, slot: torch.Tensor, draft: tuple[int, int] | None = None) -> str:
    """Decode ``path`` into ``slot`` (a uint8 (C, H, W) view of a batch on the CPU); returns its error or ``""``.

    Args:
        host: a :class:`nin.serve.predictor.Predictor` (its ``preprocessor`` and ``prepare_one`` are used).
        path: the image file.
        slot: where the pixels go; left as it was when the file has an error.
        draft: with JPEG draft on, :func:`draft_size` of the recipe; ``None``: the exact decode.
    """
    try:
        img = _open_fast(path, draft)
        if img is not None:
            try:
                _geometry_into(img, host.preprocessor, slot)
                return ""
            except Exception:
                pass  # prepare_one says what is wrong with it
        slot.copy_(host.prepare_one(path))
        return ""
    # One bad file must not end a run over a million: whatever decoding raises becomes its error row.
    except Exception as exc:
        return describe_failure(path, exc)
