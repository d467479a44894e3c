"""Inference backends behind :class:`nin.serve.Predictor`: PyTorch (from a checkpoint) and ONNX Runtime.

Both take uint8 pixels (N, C, H, W) at the model's input size, after ``Preprocessor.prepare_image`` and
before ``Preprocessor.apply``, and return float32 logits (N, K) on the CPU and, when asked and available,
the pre-GAP class maps (N, K, h, w).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from nin.data.preprocess import Preprocessor
from nin.errors import CheckpointError
from nin.export.names import ONNX_INPUT, ONNX_LOGITS, ONNX_MAPS
from nin.models.inference import inference_model
from nin.train.runtime import Runtime

log = logging.getLogger(__name__)


class TorchBackend:
    """A checkpoint's model and its fitted preprocessor on the runtime's device."""

    kind = "torch"

    def __init__(self, model: nn.Module, preprocessor: Preprocessor, runtime: Runtime) -> None:
        self.runtime = runtime
        # BN folded, ReLU fused into the convolutions, weights cast once to the runtime's precision.
        model = model.eval().to(runtime.device)
        self.model = inference_model(model, runtime.amp_dtype, runtime.memory_format)
        self.preprocessor = preprocessor
        self.has_class_maps = bool(getattr(model, "has_class_maps", True))

    @property
    def batch(self) -> int:
        """Images per forward pass that run fastest (on a CPU small slices stay in cache: Runtime.eval_batch)."""
        return self.runtime.eval_batch

    @torch.inference_mode()
    def __call__(self, pixels: torch.Tensor, maps: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        rt = self.runtime
        x = self.preprocessor.apply(pixels.to(rt.device)).contiguous(memory_format=rt.memory_format)
        with rt.autocast():
            if maps and self.has_class_maps:
                features = self.model.forward_features(x)  # (N, K, h, w)
                logits = self.model.forward_head(features)  # (N, K)
                return logits.float().cpu(), features.float().cpu()
            return self.model(x).float().cpu(), None

    def describe(self) -> str:
        return f"pytorch {self.runtime.describe()}"


class OnnxBackend:
    """An ONNX file written by ``nin export`` (preprocessing in the graph), run by ONNX Runtime on the CPU."""

    kind = "onnx"
    batch = 64  # images per session run: bounds the float32 copy of the input (ImageNet-sized inputs are large)

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        from nin.export.runtime import inference_session, session_metadata

        self.path = Path(path)
        self.session = inference_session(self.path, threads)
        outputs = [o.name for o in self.session.get_outputs()]
        inputs = [i.name for i in self.session.get_inputs()]
        if inputs != [ONNX_INPUT] or ONNX_LOGITS not in outputs:
            raise CheckpointError(
                f"{self.path} was not written by `nin export` (inputs {inputs}, outputs {outputs}); "
                "export a nin checkpoint with `nin export CHECKPOINT --format onnx`"
            )
        self.has_class_maps = ONNX_MAPS in outputs
        self.meta: dict = session_metadata(self.session, self.path)

    def __call__(self, pixels: torch.Tensor, maps: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        feed = {ONNX_INPUT: np.ascontiguousarray(pixels.detach().cpu().float().numpy())}
        names = [ONNX_LOGITS, ONNX_MAPS] if maps and self.has_class_maps else [ONNX_LOGITS]
        out = self.session.run(names, feed)
        logits = torch.from_numpy(out[0])
        return logits, (torch.from_numpy(out[1]) if len(out) > 1 else None)

    def describe(self) -> str:
        quant = " int8" if self.meta.get("quantization") else ""
        return f"onnxruntime cpu{quant}"
