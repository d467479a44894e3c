"""An inference copy of a trained model: batch norm folded into its convolution, ReLU fused into it, weights cast.

Eager PyTorch runs conv, batch norm and ReLU of every layer as three passes over the activations, and autocast
casts every weight to bf16 again on every call. At inference all three layers are one affine map and a clamp: the
BN statistics are constants, so ``BN(conv(x)) = conv'(x)`` with ``w' = w * g / sqrt(v + eps)`` and
``b' = (b - m) * g / sqrt(v + eps) + beta``, and oneDNN applies the ReLU as a post-op while the convolution's output
is still in cache; the weights are reordered into oneDNN's blocked layout once, instead of on every call. That is
what ONNX Runtime does with an exported graph (and torch.compile with freezing); this module gives the PyTorch path
the same treatment without a compile step, so ``Predictor``, ``nin eval`` and evaluation during training run at
the speed of the convolutions themselves (measured on a Zen 4 in bf16: within 3-11% of torch.compile with freezing,
which takes seconds to minutes to compile per process and batch shape). On a GPU the fold and the one-time cast
apply; the convolution and its ReLU stay two cuDNN/ATen calls.

The fold is exact up to float rounding (fp32: ~1e-6 relative, measured 8e-7 on nin_mnist logits). bf16 weights
are cast once, from the folded fp32 values. Class maps and logits come back in float32 whatever the weights are.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from nin.models.mlpconv import MLPConv


def _onednn_fused(x: torch.Tensor) -> bool:
    """Whether oneDNN's fused conv + ReLU runs this input natively (else: conv then ReLU, as eager does)."""
    if x.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    if torch.is_grad_enabled() and x.requires_grad:  # oneDNN's fused op has no backward: let autograd see conv2d
        return False
    if x.dtype == torch.float32:
        return True
    # oneDNN's bf16 convolution needs AVX512-BF16/AMX/AVX-NE-CONVERT; elsewhere ATen emulates it in conv2d.
    # (Imported here: nin.train imports the models.)
    from nin.train.runtime import cpu_has_native_bf16

    return x.dtype == torch.bfloat16 and cpu_has_native_bf16()


class FusedConv(nn.Module):
    """A convolution with its batch norm folded in and its ReLU applied in the same kernel where oneDNN can."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, relu: bool) -> None:
        super().__init__()
        w = conv.weight.detach().float()
        b = conv.bias.detach().float() if conv.bias is not None else torch.zeros(conv.out_channels, device=w.device)
        if bn is not None:
            scale = bn.weight.detach().float() / torch.sqrt(bn.running_var.float() + bn.eps)
            w = w * scale[:, None, None, None]
            b = (b - bn.running_mean.float()) * scale + bn.bias.detach().float()
        self.weight = nn.Parameter(w, requires_grad=False)
        self.bias = nn.Parameter(b, requires_grad=False)
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        self.relu = relu
        # The weight in oneDNN's layout and what it was made from (version, storage, dtype), so that a weight
        # changed in place (load_state_dict, .to) is packed again. Two threads packing at once is harmless: both
        # make the same tensor and the last one is kept.
        self._packed: tuple[tuple, torch.Tensor] | None = None

    def __getstate__(self) -> dict:
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        return {**state, "_packed": None}  # an opaque oneDNN tensor cannot be copied or saved; it is remade

    def _onednn_weight(self, x: torch.Tensor) -> torch.Tensor:
        """The weight reordered into oneDNN's layout, once per version of the weight."""
        w = self.weight
        # Tensors made under inference_mode (a copy built inside predict_logits, used there and dropped) keep no
        # version counter; their storage and dtype still tell a replaced weight.
        version = None if w.is_inference() else w._version
        key = (version, w.data_ptr(), w.dtype, x.shape[1:])
        if self._packed is None or self._packed[0] != key:
            from nin.train.runtime import CPU_EVAL_BATCH

            # oneDNN picks the weights' blocked layout for an input shape; packing for the CPU's inference batch
            # instead of whatever batch comes first keeps a server warmed up with one image fast later.
            shape = [CPU_EVAL_BATCH, *x.shape[1:]]
            args = (list(self.padding), list(self.stride), list(self.dilation), self.groups, shape)
            self._packed = (key, torch.ops.mkldnn._reorder_convolution_weight(w.detach(), *args))
        return self._packed[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _onednn_fused(x) and x.dtype == self.weight.dtype:
            return torch.ops.mkldnn._convolution_pointwise(
                x,
                self._onednn_weight(x),
                self.bias,
                list(self.padding),
                list(self.stride),
                list(self.dilation),
                self.groups,
                "relu" if self.relu else "none",
                [],
                "",
            )
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return F.relu(y, inplace=True) if self.relu else y


def _fuse_block(block: MLPConv) -> None:
    """Replace each conv [-> bn] [-> relu] of an mlpconv block by one :class:`FusedConv` (in place)."""
    for name in block.names:
        bn = getattr(block, f"{name}_bn", None)
        relu = hasattr(block, f"{name}_relu")
        setattr(block, name, FusedConv(getattr(block, name), bn, relu))
        if bn is not None:
            setattr(block, f"{name}_bn", nn.Identity())
        if relu:
            setattr(block, f"{name}_relu", nn.Identity())


class InferenceNet(nn.Module):
    """An eval-only copy of a NIN-family model with the API the inference code uses.

    Args:
        model: a model of :mod:`nin.models` (left untouched).
        dtype: what the convolutions compute in (``torch.float32`` or ``torch.bfloat16``).
        memory_format: of the weights and of the inputs it is given (``torch.channels_last`` on CPU and CUDA).
    """

    def __init__(
        self,
        model: nn.Module,
        dtype: torch.dtype = torch.float32,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        super().__init__()
        net = copy.deepcopy(model).eval()
        for module in list(net.modules()):
            if isinstance(module, MLPConv):
                _fuse_block(module)
        device = next(model.parameters()).device
        self.net = net.to(device=device, dtype=dtype, memory_format=memory_format)
        self.dtype = dtype
        self.has_class_maps = bool(getattr(model, "has_class_maps", True))
        self.num_classes = getattr(model, "num_classes", None)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float input -> (B, K, h, w) float32 class maps."""
        return self.net.forward_features(x.to(self.dtype)).float()

    def forward_head(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, K, h, w) maps -> (B, K) float32 logits: GAP in float32, or the FC head of the ablations."""
        if self.has_class_maps:
            return self.net.forward_head(maps.float())
        return self.net.forward_head(maps.to(self.dtype)).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def inference_model(model: nn.Module, dtype: torch.dtype | None, memory_format: torch.memory_format) -> nn.Module:
    """The fused copy of a model of :mod:`nin.models` (``dtype=None``: float32); any other module as it is.

    Other modules (an ONNX Runtime session behind ``nn.Module``, a model already fused) pass through unchanged.
    """
    if isinstance(model, InferenceNet) or not any(isinstance(m, MLPConv) for m in model.modules()):
        return model
    return InferenceNet(model, dtype or torch.float32, memory_format)
