"""ONNX export: the checkpoint's preprocessing + model as one graph, checked against PyTorch on the spot.

The graph takes raw pixels, ``pixels`` float32 (N, C, H, W) with values 0-255 at the model's input size
(the output of ``Preprocessor.prepare_image``), applies the fitted normalisation (mean/std, GCN+ZCA, ...)
and returns ``logits`` (N, K) and, for NIN models, the pre-GAP ``class_maps`` (N, K, h, w). The batch axis
is dynamic. Classes, input size and the preprocessing recipe travel in the file's metadata (key ``nin``),
so :meth:`nin.serve.Predictor.from_onnx` needs nothing else.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from nin.data.preprocess import Preprocessor, preprocessor_from_state
from nin.errors import CheckpointError
from nin.export.names import ONNX_INPUT, ONNX_LOGITS, ONNX_MAPS, ONNX_META_KEY
from nin.export.runtime import inference_session, parse_metadata
from nin.extras import require

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
PARITY_TOLERANCE = 1e-4  # max abs difference on logits between ONNX Runtime and PyTorch (fp32)
META_FORMAT = 1


class ExportGraph(nn.Module):
    """What is exported: ``Preprocessor.apply`` then the model, with the class maps as a second output."""

    def __init__(self, model: nn.Module, preprocessor: Preprocessor, class_maps: bool) -> None:
        super().__init__()
        self.model = model.eval()
        self.preprocessor = preprocessor
        self.class_maps = class_maps

    def forward(self, pixels: torch.Tensor):
        x = self.preprocessor.apply(pixels)
        if self.class_maps:
            maps = self.model.forward_features(x)  # (N, K, h, w)
            return self.model.forward_head(maps), maps  # (N, K), (N, K, h, w)
        return self.model(x)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    max_abs_diff: float  # ONNX Runtime vs PyTorch, logits, on the parity batch
    n_checked: int
    class_maps: bool
    seconds: float


def onnx_metadata(ckpt: dict, class_maps: bool, quantization: dict | None = None) -> dict:
    """The JSON stored under metadata key ``nin``: everything a Predictor needs besides the graph."""
    train = ckpt.get("train") or {}
    extra = {k: ckpt[k] for k in ("license", "provenance", "dataset") if isinstance(ckpt.get(k), str)}
    return {
        "format": META_FORMAT,
        "model": {"name": ckpt["model"]["name"], "options": ckpt["model"].get("options", {})},
        "classes": list(ckpt["classes"]),
        "input": dict(ckpt["input"]),
        "preprocess": {"name": ckpt["preprocess"]["name"], "options": ckpt["preprocess"].get("options", {})},
        "train": {k: train[k] for k in ("name", "dataset", "train_split", "test_split", "data_root") if k in train},
        "metrics": {k: v for k, v in (ckpt.get("metrics") or {}).items() if isinstance(v, (int, float, str))},
        "nin_version": ckpt.get("nin_version", ""),
        "class_maps": class_maps,
        "quantization": quantization,
        "extra": extra,
    }


def write_metadata(path: Path, meta: dict) -> None:
    """Store ``meta`` as JSON under metadata key ``nin`` (replacing any previous value)."""
    onnx = require("onnx", "reading and writing .onnx files")

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != ONNX_META_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_META_KEY, json.dumps(meta)
    model.producer_name = "nin"
    model.doc_string = (
        f"Network In Network ({meta['model']['name']}). Input '{ONNX_INPUT}': float32 (N, C, H, W) raw pixels 0-255; "
        f"outputs '{ONNX_LOGITS}' (N, K)" + (f" and '{ONNX_MAPS}' (N, K, h, w)." if meta["class_maps"] else ".")
    )
    onnx.save(model, str(path))


def read_metadata(path: str | Path) -> dict:
    """The ``nin`` metadata of an ``.onnx`` file, read with ``onnx`` (no ONNX Runtime session)."""
    onnx = require("onnx", "reading and writing .onnx files")

    model = onnx.load(str(path), load_external_data=False)
    return parse_metadata({p.key: p.value for p in model.metadata_props}, path)


def parity_pixels(shape: tuple[int, int, int], n: int = 5, seed: int = 0) -> torch.Tensor:
    """A check batch: random pixels plus flat black and white images (float32 0-255, (n, C, H, W))."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *shape), generator=g).float()
    x[0] = 0.0
    if n > 1:
        x[1] = 255.0
    return x


def check_parity(path: Path, graph: nn.Module, pixels: torch.Tensor) -> float:
    """Max abs difference of the logits, ONNX Runtime vs PyTorch, on ``pixels``."""
    session = inference_session(path)
    got = session.run([ONNX_LOGITS], {ONNX_INPUT: pixels.numpy().astype(np.float32)})[0]
    with torch.inference_mode():
        out = graph(pixels)
    want = (out[0] if isinstance(out, tuple) else out).numpy()
    return float(np.abs(got - want).max())


def torch_export(
    graph: nn.Module, dummy: torch.Tensor, path: str | Path, outputs: list[str], opset: int = DEFAULT_OPSET
) -> None:
    """Write ``graph`` as ONNX: input ``pixels`` and ``outputs``, all with a dynamic batch axis."""
    axes = {name: {0: "batch"} for name in [ONNX_INPUT, *outputs]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        # The TorchScript-based exporter needs no extra packages (the dynamo one needs onnxscript) and
        # handles this plain feed-forward graph exactly.
        torch.onnx.export(
            graph,
            (dummy,),
            str(path),
            input_names=[ONNX_INPUT],
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def export_onnx(
    checkpoint: str | Path | dict,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    tolerance: float = PARITY_TOLERANCE,
) -> ExportResult:
    """Export a checkpoint to ONNX and verify it with ONNX Runtime.

    Args:
        checkpoint: a checkpoint path (or a checkpoint dict already loaded).
        out: the ``.onnx`` file to write.
        opset: ONNX opset.
        verify: run ONNX Runtime on a check batch and compare the logits with PyTorch.
        tolerance: the largest max-abs logit difference accepted; above it the file is removed and
            :class:`~nin.errors.CheckpointError` raised.
    """
    from nin.train.checkpoint import build_from_checkpoint, load_checkpoint

    # torch's exporter needs onnx, the check onnxruntime: say so before any work, in one line.
    require("onnx", "ONNX export")
    if verify:
        require("onnxruntime", "checking the ONNX export")
    t0 = time.perf_counter()
    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    model = build_from_checkpoint(ckpt).float()
    pre = preprocessor_from_state(ckpt["preprocess"])
    maps = bool(getattr(model, "has_class_maps", True))
    graph = ExportGraph(model, pre, maps).eval()
    c, h, w = (int(ckpt["input"][k]) for k in ("channels", "height", "width"))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    outputs = [ONNX_LOGITS, ONNX_MAPS] if maps else [ONNX_LOGITS]
    try:
        torch_export(graph, parity_pixels((c, h, w), n=2, seed=1), out, outputs, opset)
    except Exception as exc:  # an op or a preprocessing step ONNX cannot express: say which, in one line
        out.unlink(missing_ok=True)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{ckpt['model']['name']} with {ckpt['preprocess']['name']} preprocessing cannot be exported to "
            f"ONNX opset {opset}: {first}"
        ) from exc
    write_metadata(out, onnx_metadata(ckpt, maps))
    diff, n = float("nan"), 0
    if verify:
        pixels = parity_pixels((c, h, w), n=5)  # a batch size other than the trace's: the axis is dynamic
        try:
            diff, n = check_parity(out, graph, pixels), pixels.shape[0]
        except CheckpointError as exc:  # ONNX Runtime refused what the exporter wrote: our fault, not the input's
            out.unlink(missing_ok=True)
            raise CheckpointError(
                f"ONNX Runtime cannot run the ONNX export of {ckpt['model']['name']} (opset {opset}): {exc}; "
                "the file was not kept (try another --opset)"
            ) from None
        if not diff <= tolerance:
            out.unlink(missing_ok=True)
            raise CheckpointError(
                f"the ONNX export of {ckpt['model']['name']} differs from PyTorch by {diff:.3g} on the logits "
                f"(tolerance {tolerance:g}); the file was not kept"
            )
        log.debug("ONNX parity: max abs logit difference %.3g over %d images", diff, n)
    return ExportResult(out, diff, n, maps, time.perf_counter() - t0)
