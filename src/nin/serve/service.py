"""The service's state and its one prediction path: decode -> prepare -> micro-batch -> ModelHub body.

Decoding runs on worker threads (at most ``decode_concurrency`` at once, which bounds decoder memory),
inference on the micro-batcher's single thread; the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import anyio
import torch

from nin.data.images import IMAGE_SUFFIXES, ImageDecodeError, UnsupportedImageType, open_image
from nin.errors import RequestError
from nin.serve import modelhub
from nin.serve.batching import MicroBatcher
from nin.serve.overlay import overlay_image, png_bytes
from nin.serve.predictor import Predictor
from nin.serve.samples import SampleSet, default_samples
from nin.serve.settings import ServeSettings

log = logging.getLogger(__name__)

# Pillow formats behind the MIME types of the config (modelhub.INPUT_FORMATS).
DECODE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")


def declares_image(content_type: str | None, filename: str | None) -> bool:
    """Whether the client said it sends an accepted image type (by MIME type or file extension)."""
    ct = (content_type or "").split(";", 1)[0].strip().lower()
    return ct in modelhub.INPUT_FORMATS or (filename or "").lower().endswith(IMAGE_SUFFIXES)


class ServiceState:
    """Everything the routes share: settings, the model once loaded, its config, samples and batcher."""

    def __init__(self, settings: ServeSettings, predictor: Predictor | None = None, samples: SampleSet | None = None):
        self.settings = settings
        self.predictor = predictor
        self.samples = samples
        self.config: dict | None = None
        self.batcher: MicroBatcher | None = None
        self.ready = False
        self.error: str | None = None
        self.decode_limiter = anyio.CapacityLimiter(settings.decode_concurrency)
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
            self.config = modelhub.build_config(p.info, max_side=s.max_side, top=s.top, sort=s.sort)
            if self.samples is None:
                self.samples = await asyncio.to_thread(
                    lambda: (
                        SampleSet.from_dir(s.samples_dir, s.max_upload_bytes)
                        if s.samples_dir
                        else default_samples(p.info)
                    )
                )
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

    # --- prediction -----------------------------------------------------------------------------------
    async def predict(
        self,
        data: bytes,
        *,
        content_type: str | None = None,
        filename: str | None = None,
        top: int | None = None,
        sort: bool = False,
        class_map: bool = False,
    ) -> dict:
        """One encoded image -> ModelHub's prediction body (plus ``class_map`` when asked)."""
        p = self.require_ready()
        assert self.batcher is not None and self.config is not None
        if top is not None and not 1 <= top <= len(p.classes):
            raise RequestError(f"top must be between 1 and {len(p.classes)}, got {top}", 422)
        start = time.perf_counter()
        s = self.settings

        def decode() -> torch.Tensor:
            try:
                img = open_image(data, formats=DECODE_FORMATS, max_pixels=s.max_pixels, max_side=s.max_side)
            except ImageDecodeError as exc:
                detail = str(exc).split(": ", 1)[-1]
                raise RequestError(f"{filename or 'the upload'} could not be decoded ({detail})", 400) from None
            except UnsupportedImageType:
                if declares_image(content_type, filename):
                    raise RequestError(
                        f"{filename or 'the upload'} says it is an image but could not be decoded", 400
                    ) from None
                raise RequestError(
                    f"Incorrect file type. Accepted: {', '.join(modelhub.INPUT_FORMATS)}"
                    + (f" (got {content_type})" if content_type else ""),
                    415,
                ) from None
            return p.prepare_one(img)

        pixels = await anyio.to_thread.run_sync(decode, limiter=self.decode_limiter)
        want_maps = class_map and p.has_class_maps
        logits, maps = await self.batcher.submit(pixels, want_maps)
        probs = torch.softmax(logits.float(), dim=0)
        body = modelhub.prediction_body(probs, p.classes, self.config, time.perf_counter() - start, top, sort)
        if class_map:
            body["class_map"] = await asyncio.to_thread(self._class_map, pixels, probs, maps) if want_maps else None
        return body

    def _class_map(self, pixels: torch.Tensor, probs: torch.Tensor, maps: torch.Tensor) -> dict:
        p = self.predictor
        assert p is not None
        index = int(probs.argmax())
        png = png_bytes(overlay_image(pixels, maps[index]))
        return {
            "label": p.classes[index],
            "index": index,
            "probability": float(probs[index]),
            "map_size": list(maps.shape[-2:]),
            "image": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        }

    # --- model files ----------------------------------------------------------------------------------
    def model_zip(self) -> Path:
        """ModelHub's model folder as a zip: the model file, config.json, labels.json and the licences."""
        p = self.require_ready()
        with self._zip_lock:
            if self._zip_path is not None and self._zip_path.exists():
                return self._zip_path
            assert self.config is not None and self.samples is not None
            fd, tmp = tempfile.mkstemp(prefix="nin-model-", suffix=".zip")
            os.close(fd)
            legal = modelhub.legal(p.info, self.samples.license_text)
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("model/config.json", json.dumps(self.config, indent=2))
                z.writestr("model/labels.json", json.dumps({str(i): c for i, c in enumerate(p.classes)}, indent=2))
                z.writestr("license/model", legal["model_license"])
                z.writestr("license/sample_data", legal["sample_data_license"])
                if self.settings.checkpoint and Path(self.settings.checkpoint).is_file():
                    src = Path(self.settings.checkpoint)
                    z.write(src, f"model/{src.name}", compress_type=zipfile.ZIP_STORED)
            self._zip_path = Path(tmp)
            return self._zip_path
