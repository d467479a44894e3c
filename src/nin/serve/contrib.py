"""A ModelHub contribution folder, served as it is: its card, class names, thumbnail, samples and licences.

ModelHub's layout (modelhub-ai/network-in-network's ``contrib_src`` is one)::

    model/config.json        the model card: ModelHub's config.json (id, meta, publication, model.io, modelhub)
    model/thumbnail.jpg      the card's picture
    model/labels.json        optional: class names in output order, {"0": "tench, Tinca tinca", ...}
    sample_data/             sample inputs
    license/model            the model's licence text
    license/sample_data      the samples' licence text

:meth:`Contribution.load` reads the folder; :meth:`Contribution.check` holds the card against the model it is
to describe and stops with one line naming the field that cannot describe it (outputs, class count, input
formats), before a server answers a single request with a card that does not fit its model.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

from nin.errors import ConfigError
from nin.interop.labels import read_classes
from nin.serve.modelhub import MIME_FORMATS

CONFIG = "model/config.json"
THUMBNAIL = "model/thumbnail.jpg"
LABELS = "model/labels.json"
SAMPLES = "sample_data"
MODEL_LICENSE = "license/model"
SAMPLE_LICENSE = "license/sample_data"
_LAYOUT = "model/config.json, model/thumbnail.jpg, sample_data/, license/model, license/sample_data"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; save it as UTF-8") from None


@dataclass(frozen=True)
class Contribution:
    """A contribution folder's files, read once at start-up."""

    root: Path
    card: dict  # model/config.json as written
    thumbnail: bytes
    model_license: str
    sample_data_license: str

    @classmethod
    def load(cls, folder: str | Path) -> Contribution:
        """Read a contribution folder; a missing file or a card that is not a JSON object is a one-line error."""
        root = Path(folder)
        if not root.is_dir():
            raise ConfigError(f"--modelhub-contrib {root} is not a folder; give a ModelHub contribution ({_LAYOUT})")
        for rel in (CONFIG, THUMBNAIL, MODEL_LICENSE, SAMPLE_LICENSE):
            if not (root / rel).is_file():
                raise ConfigError(f"{root / rel} is missing; a ModelHub contribution holds {_LAYOUT}")
        if not (root / SAMPLES).is_dir():
            raise ConfigError(f"{root / SAMPLES} is missing; create it (it may be empty) or add the sample inputs")
        try:
            card = json.loads(_read_text(root / CONFIG))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{root / CONFIG} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(card, dict):
            raise ConfigError(f"{root / CONFIG} must hold a JSON object (ModelHub's config.json)")
        return cls(
            root=root,
            card=card,
            thumbnail=(root / THUMBNAIL).read_bytes(),
            model_license=_read_text(root / MODEL_LICENSE),
            sample_data_license=_read_text(root / SAMPLE_LICENSE),
        )

    # --- the card against the model -----------------------------------------------------------------
    def _fail(self, field: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.root / CONFIG}: {field} {problem}")

    def labels(self, num_classes: int) -> list[str] | None:
        """The class names of labels.json (checked against the model's class count), or None without one."""
        path = self.root / LABELS
        return read_classes(path, num_classes) if path.is_file() else None

    def accepted_formats(self) -> list[str]:
        """The MIME types the card accepts (ModelHub's engine checks uploads against ``model.io.input.format``)."""
        io_input = self._io()["input"]
        return list(io_input.get("format") or io_input["single"]["format"])

    def check(self, num_classes: int) -> None:
        """Stop, naming the field, if the card cannot describe a single-image model with ``num_classes``."""
        if not isinstance(self.card.get("id"), str) or not self.card["id"]:
            raise self._fail("id", "must be the model's id (a string); prediction bodies carry it")
        meta = self.card.get("meta")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
            raise self._fail("meta.name", "must be the model's name (a string); prediction bodies carry it")
        io = self._io()
        outputs = io.get("output")
        types = [o.get("type") for o in outputs] if isinstance(outputs, list) and all(map(_is_dict, outputs)) else None
        if types != ["label_list"] or not isinstance(outputs[0].get("name"), str):
            raise self._fail(
                "model.io.output",
                f"must list one named output of type label_list (nin's models give one probability per "
                f"class); the card lists {types if types is not None else outputs!r}",
            )
        self._check_input(io.get("input"))
        modelhub = self.card.get("modelhub", {})
        if not isinstance(modelhub, dict):
            raise self._fail("modelhub", "must be an object")
        top = modelhub.get("top")
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= num_classes):
            raise self._fail("modelhub.top", f"must be a whole number from 1 to {num_classes}, got {top!r}")
        if "sort" in modelhub and not isinstance(modelhub["sort"], bool):
            raise self._fail("modelhub.sort", f"must be true or false, got {modelhub['sort']!r}")
        self.labels(num_classes)  # a labels.json with the wrong count stops here, naming the file

    def _io(self) -> dict:
        model = self.card.get("model")
        io = model.get("io") if isinstance(model, dict) else None
        if not isinstance(io, dict) or not isinstance(io.get("input"), dict):
            raise self._fail("model.io", "must describe the input and output (model.io.input, model.io.output)")
        return io

    def _check_input(self, io_input: dict) -> None:
        inputs = [k for k in io_input if k not in ("format", "description", "dim_limits")]
        if inputs not in ([], ["single"]):
            raise self._fail(
                "model.io.input", f"describes the inputs {', '.join(inputs)}; nin serves single-image models"
            )
        fields = []
        if "format" in io_input or not inputs:  # required in the pre-0.4 layout, optional beside `single`
            fields.append(("model.io.input.format", io_input.get("format")))
        if inputs:
            single = io_input["single"]
            fields.append(("model.io.input.single.format", single.get("format") if _is_dict(single) else None))
        for field, formats in fields:
            if not isinstance(formats, list) or not formats or not all(isinstance(x, str) for x in formats):
                raise self._fail(field, 'must list the accepted MIME types, e.g. ["image/png", "image/jpeg"]')
            unknown = [x for x in formats if x.lower() not in MIME_FORMATS]
            if unknown:
                raise self._fail(
                    field, f"lists {', '.join(unknown)}, which nin cannot decode (it decodes {', '.join(MIME_FORMATS)})"
                )

    # --- what the server answers ------------------------------------------------------------------------
    def served_config(self, nin: dict) -> dict:
        """The card as ``/api/get_config`` answers it: as written, input in ModelHub's ``single`` layout, plus
        ``modelhub.nin`` (the ``modelhub`` section is free-form in ModelHub's schema)."""
        config = copy.deepcopy(self.card)
        io_input = config["model"]["io"]["input"]
        single = io_input.get("single")
        if not _is_dict(single):
            # The pre-0.4 layout (ModelHub's NIN card has it) puts dim_limits beside format, which ModelHub's
            # schema rejects; ModelHub >= 0.4 clients read the input under `single`.
            single = {"format": list(io_input["format"])}
            if "dim_limits" in io_input:
                single["dim_limits"] = io_input["dim_limits"]
        served = {"format": self.accepted_formats(), "single": single}
        if "description" in io_input:
            served["description"] = io_input["description"]
        config["model"]["io"]["input"] = served
        config["modelhub"] = {**config.get("modelhub", {}), "nin": nin}
        return config

    def defaults(self) -> tuple[int | None, bool | None]:
        """The card's ``modelhub.top`` and ``modelhub.sort`` (None where it sets neither)."""
        modelhub = self.card.get("modelhub", {})
        return modelhub.get("top"), modelhub.get("sort")

    def model_files(self) -> list[tuple[str, Path | None]]:
        """``(name in the zip, file)`` for everything under ``model/``, folders as ``(name/, None)``, as
        ModelHub's engine zips a contribution's model folder."""
        base = self.root / "model"
        entries: list[tuple[str, Path | None]] = [("model/", None)]
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(self.root).as_posix()
            if path.is_dir():
                entries.append((rel + "/", None))
            elif path.is_file():
                entries.append((rel, path))
        return entries


def _is_dict(x: object) -> bool:
    return isinstance(x, dict)
