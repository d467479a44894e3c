"""The device and precision policy: the one place that branches on the hardware."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
from dataclasses import dataclass
from functools import lru_cache

import torch

from nin import heap
from nin._version import __version__
from nin.errors import ConfigError

log = logging.getLogger(__name__)

CPU_EVAL_BATCH = 64  # images per inference forward pass on a CPU (Runtime.eval_batch)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # autocast dtype, None = plain fp32
    channels_last: bool
    compile: bool

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @property
    def eval_batch(self) -> int:
        """Images per forward pass for inference over many images (``predict_logits``, ``nin eval``).

        On a CPU small batches win: their activations stay in cache (measured on a 2-core Zen 4, fused
        inference copy: batch 32-64 ran 1.2-1.35x faster than 256 for nin_cifar10 and nin_mnist, fp32 and bf16).
        A GPU wants large batches to fill its cores.
        """
        return 1024 if self.device.type == "cuda" else CPU_EVAL_BATCH

    @property
    def sync_every(self) -> int:
        """Steps between reads of the loss back to the host (each read waits for the queued GPU work)."""
        return 50 if self.device.type == "cuda" else 1

    @property
    def augment_ahead(self) -> int:
        """Steps whose augmentation is prepared together (its random draws are copied to the device)."""
        return 32 if self.device.type == "cuda" else 1

    def optimizer_options(self) -> dict:
        """Implementation switches for ``torch.optim``: fused kernels on CUDA, foreach on the CPU."""
        # foreach on the CPU: one multi-tensor op per group instead of a Python loop over tensors.
        return {"fused": True} if self.device.type == "cuda" else {"foreach": True}

    def setup(self) -> None:
        """Process-wide switches for this device (called once by the training loop)."""
        if self.device.type == "cuda":
            # Fixed input shapes (drop_last): let cuDNN pick the fastest convolution algorithms once.
            torch.backends.cudnn.benchmark = True
            # fp32 leftovers (loss, optimizer maths) may use TF32 tensor cores.
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        elif self.device.type == "cpu":
            # Every step frees and allocates the same activations again: keep them in the heap instead of
            # mapping fresh pages each time (measured 1.2x faster steps; see nin.heap).
            heap.keep_freed_memory()

    @property
    def precision(self) -> str:
        """``fp32`` or ``bf16``: what the convolutions compute in."""
        return "bf16" if self.amp_dtype == torch.bfloat16 else "fp32"

    def describe(self) -> str:
        prec = self.precision
        return (
            f"{self.device} {prec}{' channels_last' if self.channels_last else ''}{' compiled' if self.compile else ''}"
        )


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_model_name() -> str:
    """The CPU's marketing name and, where the OS tells them, its family and model numbers.

    Virtual machines often report a bare "AMD EPYC": the family/model pair is what tells a Zen 1 (family 23)
    from a Zen 4 (family 25, model 17) there.
    """
    info = _cpuinfo()
    name = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info and "model" in info:
        name += f" (family {info['cpu family']}, model {info['model']})"
    return name


# The CPU features that decide how fast (and in which precision) the convolutions run.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "amx_int8")


def _cpuinfo() -> dict[str, str]:
    """The first processor's entries of Linux's /proc/cpuinfo (empty elsewhere)."""
    entries: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                entries[key.strip()] = value.strip()
    except OSError:
        pass
    return entries


def cpu_flags() -> dict[str, bool]:
    """Which of :data:`CPU_FLAGS` the CPU reports (all False where the OS does not tell)."""
    have = set(_cpuinfo().get("flags", "").split())
    return {flag: flag in have for flag in CPU_FLAGS}


def machine_info(rt: Runtime | None = None) -> dict:
    """What numbers were measured on (benchmarks and reproduction reports): CPU, threads, GPU, versions."""
    info = {
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": cpu_model_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "cpu_flags": cpu_flags(),
        "cpu_capability": _cpu_capability(),
        "freed_memory_kept": heap.kept(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "nin": __version__,
    }
    if rt is not None:
        info.update(device=str(rt.device), runtime=rt.describe(), precision=rt.precision)
    if rt is not None and rt.device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(rt.device)
    elif rt is None and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_capability() -> str:
    """The vector ISA PyTorch's own CPU kernels were dispatched to (e.g. AVX2, AVX512)."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda asked for, but this torch build sees no CUDA GPU; use device=cpu")
    return device


# Inference answers must not depend on the machine a model lands on: fp32 unless bf16 is asked for.
INFERENCE_PRECISION = "fp32"


def inference_runtime(device: str = "auto", precision: str = INFERENCE_PRECISION) -> Runtime:
    """The runtime of every inference path (Predictor, ``nin predict/serve/eval/classmaps``).

    Training's ``auto`` takes bf16 wherever the CPU or GPU computes it natively, so its numbers differ from one
    machine to the next by up to ~1e-2 in probability. Inference defaults to fp32 instead, so the same file gives
    the same probabilities (within 1e-5, and equal to the ONNX export's) on an AVX2 laptop, a bf16 server or a GPU;
    ``precision="bf16"`` (or ``"auto"``, the training policy) is an explicit choice of speed over that guarantee.

    On a CPU this also makes the process keep freed memory for reuse (:mod:`nin.heap`), as training does: measured
    in fresh processes on a 2-core Zen 4, 1.2x faster fp32 forwards of ``nin_cifar10`` at batch 64 (whose
    activations are mapped afresh every batch otherwise), within 3% for bf16 and the MNIST nets.
    ``NIN_SYSTEM_MALLOC=1`` opts out.
    """
    rt = select_runtime(device, precision, compile="off")
    if rt.device.type == "cpu":
        heap.keep_freed_memory()
    return rt


def select_runtime(
    device: str = "auto", precision: str = "auto", channels_last: str = "auto", compile: str = "auto"
) -> Runtime:
    """Choose device, autocast dtype, memory format and compilation.

    ``auto`` precision is bf16 on CUDA GPUs that support it and on CPUs with native bf16 (measured:
    bf16 emulated on an AVX2-only CPU is slower than fp32), fp32 elsewhere. channels_last is on wherever
    oneDNN or cuDNN run convolutions faster in it (CPU and CUDA).
    """
    dev = resolve_device(device)
    if precision == "auto":
        if dev.type == "cuda":
            bf16 = torch.cuda.is_bf16_supported()
        else:
            bf16 = dev.type == "cpu" and cpu_has_native_bf16()
    elif precision == "bf16":
        bf16 = True
    elif precision == "fp32":
        bf16 = False
    else:
        raise ConfigError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    cl = dev.type in ("cpu", "cuda") if channels_last == "auto" else channels_last == "on"
    comp = dev.type == "cuda" if compile == "auto" else compile == "on"
    return Runtime(dev, torch.bfloat16 if bf16 else None, cl, comp)
