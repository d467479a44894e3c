"""What the server says about its model: config.json, class names, accepted types, legal texts, samples.

Two sources. By default everything is generated from the checkpoint (:func:`nin.serve.modelhub.build_config`,
the default samples). With ``nin serve --modelhub-contrib DIR`` it comes from a ModelHub contribution folder
(:class:`nin.serve.contrib.Contribution`): its card, its labels.json, its licences, its sample_data and its
thumbnail, checked against the model first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nin.serve import modelhub
from nin.serve.contrib import Contribution
from nin.serve.predictor import ModelInfo
from nin.serve.samples import MODEL_THUMBNAIL, SampleSet, default_samples
from nin.serve.settings import ServeSettings

ZipEntry = tuple[str, bytes | Path | None]  # name in the zip, its bytes or file (None: a folder)


@dataclass
class Card:
    config: dict  # what /api/get_config answers
    classes: list[str]  # class names in output order
    formats: tuple[str, ...]  # Pillow formats an upload may have (the config's accepted MIME types)
    legal: dict  # /api/get_legal
    samples: SampleSet
    top: int | None = None  # default ?top= (a contribution's modelhub.top)
    sort: bool | None = None  # default ?sort= (a contribution's modelhub.sort)
    contrib: Contribution | None = None

    def zip_entries(self, model_file: Path | None) -> list[ZipEntry]:
        """The model-files zip, laid out as ModelHub's: everything under ``model/``, the model file with it."""
        if self.contrib is not None:
            entries: list[ZipEntry] = list(self.contrib.model_files())
        else:
            thumb, _mime = self.samples.thumbnail(MODEL_THUMBNAIL)  # always found: a sample stands in
            entries = [
                ("model/", None),
                ("model/config.json", json.dumps(self.config, indent=2).encode()),
                ("model/labels.json", json.dumps({str(i): c for i, c in enumerate(self.classes)}, indent=2).encode()),
                ("model/thumbnail.jpg", thumb),
            ]
        if model_file is not None and model_file.is_file():
            name = f"model/{model_file.name}"
            entries = [e for e in entries if e[0] != name] + [(name, model_file)]
        return entries


def _pillow_formats(mime_types: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(modelhub.MIME_FORMATS[m.lower()] for m in mime_types))


def build_card(info: ModelInfo, settings: ServeSettings, samples: SampleSet | None = None) -> Card:
    """The card for a loaded model (ConfigError, naming the field, when a contribution cannot describe it)."""
    s = settings
    if not s.modelhub_contrib:
        config = modelhub.build_config(info, max_side=s.max_side, top=s.top, sort=s.sort)
        if samples is None:
            samples = SampleSet.from_dir(s.samples_dir, s.max_upload_bytes) if s.samples_dir else default_samples(info)
        return Card(
            config=config,
            classes=list(info.classes),
            formats=_pillow_formats(modelhub.INPUT_FORMATS),
            legal=modelhub.legal(info, samples.license_text),
            samples=samples,
        )
    contrib = Contribution.load(s.modelhub_contrib)
    contrib.check(len(info.classes))
    classes = contrib.labels(len(info.classes)) or list(info.classes)
    samples = samples if samples is not None else SampleSet.from_contrib(contrib, s.max_upload_bytes)
    top, sort = contrib.defaults()
    return Card(
        config=contrib.served_config(modelhub.nin_section(info, classes)),
        classes=classes,
        formats=_pillow_formats(contrib.accepted_formats()),
        legal=modelhub.legal(info, contrib.sample_data_license, contrib.model_license),
        samples=samples,
        top=top,
        sort=sort,
        contrib=contrib,
    )
