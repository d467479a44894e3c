"""The service's state and its one prediction path: decode -> prepare -> micro-batch -> ModelHub body.

Decoding runs on worker threads (at most ``decode_concurrency`` at once, which bounds decoder memory),
inference on the micro-batcher's single thread; the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import os
import tempfile
import threading
import time
import warnings
import zipfile
from pathlib import Path

import anyio
import torch
from PIL import Image

from nin.data.images import FORMAT_MIME, SUFFIX_FORMATS, ImageDecodeError, UnsupportedImageType, open_image
from nin.errors import RequestError
from nin.serve import modelhub
from nin.serve.batching import MicroBatcher
from nin.serve.card import Card, build_card
from nin.serve.overlay import overlay_image, png_bytes
from nin.serve.predictor import Predictor
from nin.serve.samples import SampleSet
from nin.serve.settings import ServeSettings

log = logging.getLogger(__name__)

# Pillow formats behind the MIME types nin decodes (modelhub.MIME_FORMATS).
DECODE_FORMATS = tuple(dict.fromkeys(modelhub.MIME_FORMATS.values()))


def declares_image(content_type: str | None, filename: str | None, formats: tuple[str, ...]) -> bool:
    """Whether the client said it sends an image of one of ``formats`` (by MIME type or file extension)."""
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    suffix = Path(filename or "").suffix.lower()
    return modelhub.MIME_FORMATS.get(ct) in formats or SUFFIX_FORMATS.get(suffix) in formats


def sniff_format(data: bytes) -> str | None:
    """The Pillow format of ``data`` among the ones nin decodes (header only), or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # only the type is read here
            with Image.open(io.BytesIO(data), formats=list(DECODE_FORMATS)) as img:
                return img.format
    except Exception:  # not an image, or one Pillow refuses to even open: no type to report
        return None


class ServiceState:
    """Everything the routes share: settings, the model once loaded, its card (config, samples, legal) and batcher."""

    def __init__(self, settings: ServeSettings, predictor: Predictor | None = None, samples: SampleSet | None = None):
        self.settings = settings
        self.predictor = predictor
        self._samples = samples  # given by the caller, else the card chooses them
        self.card: Card | None = None
        self.batcher: MicroBatcher | None = None
        self.ready = False
        self.error: str | None = None
        self.decode_limiter = anyio.CapacityLimiter(settings.decode_concurrency)
        # Predictions admitted (decoding, queued or computing): more than the queue plus one batch get 503 at
        # once, before any decoding, instead of waiting for a decoder thread only to find the queue full.
        self.admitted = 0
        self.max_admitted = settings.max_queue + settings.max_batch
        self._zip_path: Path | None = None
        self._zip_lock = threading.Lock()

    # --- life cycle -----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the model (once), build config and samples, start the batcher and warm it up."""
        s = self.settings
        try:
            if s.threads:
                torch.set_num_threads(s.threads)
            if self.predictor is None:
                log.info("loading %s", s.checkpoint)
                self.predictor = await asyncio.to_thread(
                    Predictor.from_checkpoint, s.checkpoint, s.device, s.precision, s.threads
                )
            p = self.predictor
            self.card = await asyncio.to_thread(build_card, p.info, s, self._samples)
            self.batcher = MicroBatcher(p.run, s.max_batch, s.max_wait_ms, s.max_queue)
            await self.batcher.start()
            warm = torch.zeros((1, *p.input_shape), dtype=torch.uint8)
            await self.batcher.call(p.run, warm, p.has_class_maps)
            self.ready = True
            log.info("ready: %s", p.describe())
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("the model could not be loaded: %s", self.error)

    async def stop(self) -> None:
        self.ready = False
        if self.batcher is not None:
            await self.batcher.stop()
        if self._zip_path is not None:
            self._zip_path.unlink(missing_ok=True)

    def require_ready(self) -> Predictor:
        if not self.ready or self.predictor is None:
            why = f"the model failed to load ({self.error})" if self.error else "the model is loading"
            raise RequestError(f"{why}; retry shortly" if not self.error else why, 503)
        return self.predictor

    def require_card(self) -> Card:
        """The card of the loaded model (503 while it loads or after it failed, as :meth:`require_ready`)."""
        self.require_ready()
        assert self.card is not None
        return self.card

    # --- prediction -----------------------------------------------------------------------------------
    async def predict(
        self,
        data: bytes,
        *,
        content_type: str | None = None,
        filename: str | None = None,
        top: int | None = None,
        sort: bool | None = None,
        class_map: bool = False,
        sample: bool = False,
    ) -> dict:
        """One encoded image -> ModelHub's prediction body (plus ``class_map`` when asked).

        Uploads and fetched files must have one of the card's accepted types (``sample``: a file of the
        server's own, decoded in any type nin reads). ``top``/``sort`` default to the card's.
        """
        p, card = self.require_ready(), self.require_card()
        assert self.batcher is not None
        if self.admitted >= self.max_admitted:
            raise RequestError(f"the server is busy ({self.admitted} requests in progress); retry shortly", 503)
        self.admitted += 1
        try:
            return await self._predict(p, card, data, content_type, filename, top, sort, class_map, sample)
        finally:
            self.admitted -= 1

    async def _predict(
        self,
        p: Predictor,
        card: Card,
        data: bytes,
        content_type: str | None,
        filename: str | None,
        top: int | None,
        sort: bool | None,
        class_map: bool,
        sample: bool,
    ) -> dict:
        assert self.batcher is not None
        top = card.top if top is None else top
        sort = (card.sort if card.sort is not None else top is not None) if sort is None else sort
        if top is not None and not 1 <= top <= len(card.classes):
            raise RequestError(f"top must be between 1 and {len(card.classes)}, got {top}", 422)
        start = time.perf_counter()
        s = self.settings
        formats = DECODE_FORMATS if sample else card.formats

        def decode() -> torch.Tensor:
            try:
                img = open_image(data, formats=formats, max_pixels=s.max_pixels, max_side=s.max_side)
            except ImageDecodeError as exc:
                detail = str(exc).split(": ", 1)[-1]
                raise RequestError(f"{filename or 'the upload'} could not be decoded ({detail})", 400) from None
            except UnsupportedImageType:
                raise self._type_error(data, content_type, filename, formats) from None
            return p.prepare_one(img)

        pixels = await anyio.to_thread.run_sync(decode, limiter=self.decode_limiter)
        want_maps = class_map and p.has_class_maps
        logits, maps = await self.batcher.submit(pixels, want_maps)
        probs = torch.softmax(logits.float(), dim=0)
        body = modelhub.prediction_body(probs, card.classes, card.config, time.perf_counter() - start, top, sort)
        if class_map:
            body["class_map"] = await asyncio.to_thread(self._class_map, pixels, probs, maps) if want_maps else None
        return body

    def _type_error(self, data: bytes, content_type: str | None, filename: str | None, formats) -> RequestError:
        """ModelHub's ``Incorrect file type.`` for a type the card does not accept; a declared but
        undecodable image is a decoding error instead."""
        found = sniff_format(data)
        if found is None and declares_image(content_type, filename, formats):
            return RequestError(f"{filename or 'the upload'} says it is an image but could not be decoded", 400)
        accepted = self.require_card().config["model"]["io"]["input"]["format"]
        got = FORMAT_MIME.get(found, "") if found else (content_type or "")
        return RequestError(
            f"Incorrect file type. Accepted: {', '.join(accepted)}" + (f" (got {got})" if got else ""), 415
        )

    def _class_map(self, pixels: torch.Tensor, probs: torch.Tensor, maps: torch.Tensor) -> dict:
        assert self.card is not None
        index = int(probs.argmax())
        png = png_bytes(overlay_image(pixels, maps[index]))
        return {
            "label": self.card.classes[index],
            "index": index,
            "probability": float(probs[index]),
            "map_size": list(maps.shape[-2:]),
            "image": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        }

    # --- model files ----------------------------------------------------------------------------------
    def model_zip(self) -> Path:
        """ModelHub's model folder as a zip (``model/...``, the served model file with it), made once."""
        card = self.require_card()
        with self._zip_lock:
            if self._zip_path is not None and self._zip_path.exists():
                return self._zip_path
            model_file = Path(self.settings.checkpoint) if self.settings.checkpoint else None
            fd, tmp = tempfile.mkstemp(prefix="nin-model-", suffix=".zip")
            os.close(fd)
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                for name, content in card.zip_entries(model_file):
                    if content is None:  # a folder entry, as ModelHub's shutil.make_archive writes them
                        folder = zipfile.ZipInfo(name)
                        folder.external_attr = (0o40755 << 16) | 0x10  # a directory, for unzip tools
                        z.writestr(folder, b"")
                    elif isinstance(content, Path):
                        big = content.stat().st_size > 1 << 20  # weights barely compress: store them
                        z.write(content, name, compress_type=zipfile.ZIP_STORED if big else zipfile.ZIP_DEFLATED)
                    else:
                        z.writestr(name, content)
            self._zip_path = Path(tmp)
            return self._zip_path
