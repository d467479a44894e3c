"""Sample images served by ``/api/get_samples``, ``/api/samples/<name>`` and ``/api/thumbnail/<name>``.

Defaults: ten digits from the embedded MNIST test split (one per class, PNG, kept in memory), or, for an
ImageNet model, four of ModelHub's NIN sample photos shipped with nin. ``nin serve --samples DIR`` serves
the images of a folder instead (its ``LICENSE*`` file, if any, becomes the sample-data licence);
``nin serve --modelhub-contrib DIR`` serves the contribution's ``sample_data/`` and its thumbnail.
"""

from __future__ import annotations

import io
import mimetypes
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from PIL import Image

from nin.data.images import IMAGE_SUFFIXES, open_image, to_mode
from nin.errors import ConfigError
from nin.serve.contrib import SAMPLES, Contribution
from nin.serve.predictor import ModelInfo

MAX_SAMPLES = 200
THUMBNAIL_SIZE = 128  # px, longer side
MODEL_THUMBNAIL = "thumbnail.jpg"  # ModelHub's name for the model's own picture


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    mime: str


class SampleSet:
    """Named sample files plus their licence text; thumbnails are made on first request and cached."""

    def __init__(self, samples: list[Sample], license_text: str, model_thumbnail: bytes | None = None) -> None:
        self._samples = {s.name: s for s in samples}
        self.license_text = license_text
        self._thumbs: dict[str, bytes] = {} if model_thumbnail is None else {MODEL_THUMBNAIL: model_thumbnail}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return list(self._samples)

    def get(self, name: str) -> Sample | None:
        return self._samples.get(name)

    def __len__(self) -> int:
        return len(self._samples)

    def thumbnail(self, name: str) -> tuple[bytes, str] | None:
        """(bytes, mime) of a sample's thumbnail (PNG), or of the model's (``thumbnail.jpg``: the card's
        picture, else a montage of the samples)."""
        if name != MODEL_THUMBNAIL and name not in self._samples:
            return None
        with self._lock:
            if name not in self._thumbs:
                self._thumbs[name] = self._montage() if name == MODEL_THUMBNAIL else self._thumb(name)
        return self._thumbs[name], "image/jpeg" if name == MODEL_THUMBNAIL else "image/png"

    def _thumb_image(self, name: str) -> Image.Image:
        img = to_mode(open_image(self._samples[name].data), 3)
        if max(img.size) > THUMBNAIL_SIZE:
            img.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.LANCZOS)
        elif max(img.size) < THUMBNAIL_SIZE // 2:  # tiny digits: whole-pixel upscale keeps them sharp
            f = THUMBNAIL_SIZE // max(img.size)
            img = img.resize((img.width * f, img.height * f), Image.NEAREST)
        return img

    def _thumb(self, name: str) -> bytes:
        buf = io.BytesIO()
        self._thumb_image(name).save(buf, format="PNG")
        return buf.getvalue()

    def _montage(self) -> bytes:
        tile = THUMBNAIL_SIZE // 2
        names = self.names()[:8]
        canvas = Image.new("RGB", (tile * 4, tile * 2), (245, 245, 245))
        for i, name in enumerate(names):
            img = self._thumb_image(name).convert("RGB")
            img.thumbnail((tile, tile), Image.LANCZOS)
            x, y = (i % 4) * tile + (tile - img.width) // 2, (i // 4) * tile + (tile - img.height) // 2
            canvas.paste(img, (x, y))
        buf = io.BytesIO()
        canvas.save(buf, format="JPEG", quality=90)
        return buf.getvalue()

    # --- sources --------------------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, folder: str | Path, max_bytes: int = 10 * 1024 * 1024) -> SampleSet:
        """Every image file directly inside ``folder`` (sorted by name); ``LICENSE*`` is the licence text."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ConfigError(f"--samples {folder} is not a folder of images")
        samples, license_text = _scan(folder, max_bytes)
        if not samples:
            raise ConfigError(f"--samples {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return cls(samples, license_text or f"No licence file was found in the sample folder {folder.name}.")

    @classmethod
    def from_contrib(cls, contrib: Contribution, max_bytes: int = 10 * 1024 * 1024) -> SampleSet:
        """A ModelHub contribution's ``sample_data/`` (it may be empty), its licence and its thumbnail."""
        samples, _ = _scan(contrib.root / SAMPLES, max_bytes)
        return cls(samples, contrib.sample_data_license, model_thumbnail=contrib.thumbnail)

    @classmethod
    def embedded_digits(cls) -> SampleSet:
        """The first digit of each class in the embedded MNIST test split, as PNG files."""
        from nin.data.embedded import load_embedded_mnist

        test = load_embedded_mnist("test")
        samples = []
        for label in range(len(test.classes)):
            idx = int((test.labels == label).nonzero()[0, 0])
            buf = io.BytesIO()
            Image.fromarray(test.images[idx, 0].numpy()).save(buf, format="PNG")
            samples.append(Sample(f"digit-{test.classes[label]}.png", buf.getvalue(), "image/png"))
        return cls(samples, _legal_text("mnist_samples.txt"))

    @classmethod
    def imagenet_photos(cls) -> SampleSet:
        """ModelHub's NIN sample photos shipped with nin (Pexels licence)."""
        root = resources.files("nin.serve.assets.imagenet_samples")
        samples = [
            Sample(p.name, p.read_bytes(), mimetypes.guess_type(p.name)[0] or "image/jpeg")
            for p in sorted(root.iterdir(), key=lambda p: p.name)
            if p.name.lower().endswith(IMAGE_SUFFIXES)
        ]
        return cls(samples, root.joinpath("LICENSE-sample_data.txt").read_text(encoding="utf-8"))


def _scan(folder: Path, max_bytes: int) -> tuple[list[Sample], str]:
    """The image files directly inside ``folder`` (sorted by name) and the text of its ``LICENSE*`` file."""
    samples, license_text = [], ""
    for path in sorted(folder.iterdir()):
        if path.name.upper().startswith("LICENSE") and path.is_file():
            license_text = path.read_text(encoding="utf-8", errors="replace")
        elif path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and path.stat().st_size <= max_bytes:
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            samples.append(Sample(path.name, path.read_bytes(), mime))
        if len(samples) >= MAX_SAMPLES:
            break
    return samples, license_text


def _legal_text(name: str) -> str:
    return resources.files("nin.serve.legal").joinpath(name).read_text(encoding="utf-8")


def default_samples(info: ModelInfo) -> SampleSet:
    """Photos for an ImageNet model (1000 classes, colour), the embedded test digits for everything else."""
    if len(info.classes) == 1000 and int(info.input["channels"]) == 3:
        return SampleSet.imagenet_photos()
    return SampleSet.embedded_digits()
