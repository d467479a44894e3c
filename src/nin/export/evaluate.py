"""Evaluating exported files like checkpoints: the hook ``nin eval`` uses for ``.onnx`` (fp32 or int8).

``load_for_eval(path, runtime)`` returns what ``nin.train.evaluate.evaluate`` takes, for a ``.pt`` checkpoint
and an ``.onnx`` export alike: a checkpoint-shaped dict (``model``, ``classes``, ``input``, ``train``,
``metrics``), a model and a preprocessor. An ONNX graph normalises its input itself, so its preprocessor is
the identity and the model is a thin module around an ONNX Runtime session.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from nin.data.preprocess import Preprocessor, build_preprocessor, preprocessor_from_state
from nin.errors import ConfigError
from nin.export.names import ONNX_INPUT, ONNX_LOGITS
from nin.train.runtime import Runtime, inference_runtime


class OnnxModule(nn.Module):
    """An exported ``.onnx`` file as an ``nn.Module``: raw pixels (N, C, H, W) float 0-255 -> logits (N, K)."""

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        super().__init__()
        from nin.export.runtime import inference_session, session_metadata

        self.path = Path(path)
        self.session = inference_session(self.path, threads)
        self.meta: dict = session_metadata(self.session, self.path)  # classes, input, train, metrics, ...

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.detach().float().cpu().contiguous().numpy()
        return torch.from_numpy(self.session.run([ONNX_LOGITS], {ONNX_INPUT: x})[0]).to(pixels.device)


def load_for_eval(path: str | Path, runtime: Runtime) -> tuple[dict, nn.Module, Preprocessor]:
    """(checkpoint-like dict, model on the runtime's device, preprocessor) for a ``.pt`` or ``.onnx`` file."""
    from nin.train.checkpoint import build_from_checkpoint, load_checkpoint

    path = Path(path)
    if path.suffix.lower() == ".onnx":
        if not path.is_file():
            raise ConfigError(f"{path} does not exist; write it with `nin export CHECKPOINT --format onnx`")
        model = OnnxModule(path)
        info = {k: model.meta[k] for k in ("model", "classes", "input", "train", "metrics")}
        info["preprocess"] = {"name": "none", "options": {}, "tensors": {}}  # inside the graph
        info["quantization"] = model.meta.get("quantization")
        return info, model, build_preprocessor("none")
    ckpt = load_checkpoint(path)
    model = build_from_checkpoint(ckpt).to(runtime.device, memory_format=runtime.memory_format)
    return ckpt, model, preprocessor_from_state(ckpt["preprocess"])


def evaluate_file(
    path: str | Path, dataset: str | None = None, split: str | None = None, batch_size: int | None = None
) -> dict:
    """Accuracy of a ``.pt`` or ``.onnx`` file on its dataset's test split (or ``dataset``/``split``), on the CPU."""
    from nin.train.evaluate import evaluate
    from nin.train.testdata import load_eval_split

    rt = inference_runtime("cpu")
    ckpt, model, pre = load_for_eval(path, rt)
    where, ds = load_eval_split(ckpt, dataset, split, source=path, hint="pass dataset=NAME")
    metrics = evaluate(model, ds.images, ds.labels, pre, rt, batch_size)
    metrics.update({"dataset": where.dataset, "split": where.split, "file": str(path)})
    return metrics
