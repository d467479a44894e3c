"""Evaluation throughput and single-image latency: our eager path, the bare model, and ONNX Runtime.

The pipeline figures go through the code the project uses (:func:`nin.train.evaluate.predict_logits`: uint8
images in, the fitted preprocessor, the runtime's precision and memory format, float32 logits out on the host).
The bare figures time only the forward of the model the pipeline runs (its inference copy: batch norm folded,
ReLU fused, weights cast once; :mod:`nin.models.inference`), at the same batch size, precision and memory format,
on inputs preprocessed beforehand: the compute bound of the pipeline, so their ratio is what the pipeline costs.
The eager figures time the trained module itself under autocast, as a textbook evaluation loop runs it: their
ratio to the bare figures is what the inference copy buys.
ONNX Runtime runs a private fp32 export of the same weights with the preprocessing done beforehand, as a
deployment would feed it.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from nin.data.preprocess import Preprocessor
from nin.export.names import ONNX_INPUT, ONNX_LOGITS
from nin.models.inference import inference_model
from nin.train.evaluate import predict_logits
from nin.train.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class InferenceSpeed:
    eval_img_s: list[float] = field(default_factory=list)
    bare_img_s: list[float] = field(default_factory=list)
    eager_img_s: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    onnx_img_s: list[float] = field(default_factory=list)
    onnx_latency_ms: list[float] = field(default_factory=list)
    onnx_error: str | None = None


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def _onnx_session(model: nn.Module, shape: tuple[int, int, int], threads: int):
    """An ONNX Runtime session for ``model`` (fp32, NCHW, dynamic batch), or raise why not."""
    from nin.export.onnx import torch_export
    from nin.export.runtime import inference_session

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        torch_export(_plain_copy(model), torch.zeros(1, *shape), path, [ONNX_LOGITS])
        return inference_session(path, threads)


def _plain_copy(model: nn.Module) -> nn.Module:
    """An fp32 NCHW CPU copy in eval mode (what an exporter wants)."""
    import copy

    m = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).float().eval()
    return m


def measure_inference(
    model: nn.Module,
    images: torch.Tensor,
    pre: Preprocessor,
    rt: Runtime,
    *,
    rounds: int,
    batch_size: int,
    latency_samples: int,
    onnx: bool = True,
    between: Callable[[], None] | None = None,
) -> InferenceSpeed:
    """Eval img/s over ``images`` (``rounds`` passes) and batch-1 latency, eager and ONNX Runtime."""
    out = InferenceSpeed()
    model = model.to(rt.device, memory_format=rt.memory_format).eval()
    sess = None
    if onnx:
        try:
            sess = _onnx_session(model, tuple(images.shape[1:]), torch.get_num_threads())
        except Exception as exc:  # missing package, exporter limits: report, do not fail the benchmark
            out.onnx_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]
            log.info("ONNX Runtime skipped: %s", out.onnx_error)
    one = images[:1]
    x_np = pre.apply(images).numpy() if sess is not None else None
    sync = torch.cuda.synchronize if rt.device.type == "cuda" else (lambda: None)

    fused = inference_model(model, rt.amp_dtype, rt.memory_format)  # what predict_logits and Predictor run

    @torch.inference_mode()
    def single() -> None:
        x = pre.apply(one.to(rt.device)).contiguous(memory_format=rt.memory_format)
        with rt.autocast():
            fused(x).float().cpu()  # the answer reaches the host: a real request waits for it

    with torch.inference_mode():  # the bare model's inputs: preprocessed, on the device, in its memory format
        bare_inputs = [
            pre.apply(images[i : i + batch_size].to(rt.device)).contiguous(memory_format=rt.memory_format)
            for i in range(0, images.shape[0], batch_size)
        ]

    @torch.inference_mode()
    def forward_only(net: nn.Module) -> None:
        with rt.autocast():
            for x in bare_inputs:
                net(x)
        sync()

    # The pipeline is given the fused copy built above (predict_logits would otherwise build one per call).
    predict_logits(fused, images[: 2 * batch_size], pre, rt, batch_size)  # warm-up
    forward_only(fused)
    forward_only(model)
    for _ in range(3):
        single()
    if sess is not None:
        sess.run(None, {ONNX_INPUT: x_np[:batch_size]})
    for _ in range(rounds):
        sync()
        t0 = time.perf_counter()
        predict_logits(fused, images, pre, rt, batch_size)
        out.eval_img_s.append(images.shape[0] / (time.perf_counter() - t0))
        for net, samples in ((fused, out.bare_img_s), (model, out.eager_img_s)):
            t0 = time.perf_counter()
            forward_only(net)
            samples.append(images.shape[0] / (time.perf_counter() - t0))
        for _ in range(max(1, latency_samples // rounds)):
            t0 = time.perf_counter()
            single()
            out.latency_ms.append(1000 * (time.perf_counter() - t0))
        if sess is not None:
            t0 = time.perf_counter()
            for i in range(0, x_np.shape[0], batch_size):
                sess.run(None, {ONNX_INPUT: x_np[i : i + batch_size]})
            out.onnx_img_s.append(x_np.shape[0] / (time.perf_counter() - t0))
            for _ in range(max(1, latency_samples // rounds)):
                t0 = time.perf_counter()
                sess.run(None, {ONNX_INPUT: pre.apply(one).numpy()})
                out.onnx_latency_ms.append(1000 * (time.perf_counter() - t0))
        if between is not None:
            between()
    return out


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
