"""The preprocessor contract and the three recipes that need nothing else: ``none``, ``scale``, ``mean_std``.

A preprocessor is fit once on the training split and applied as batched tensor ops on any device. Training,
evaluation, ``Predictor``, serving and export all call the same object, so each transform has exactly one
implementation. ``state_dict()`` holds only tensors, strings and numbers, so a checkpoint that carries it
still loads with ``torch.load(weights_only=True)``. Recipes are found by name through
:mod:`nin.data.preprocess`.
"""

from __future__ import annotations

import torch


class Preprocessor:
    """Base class: ``fit(images)`` on uint8 (N, C, H, W) training images, ``apply(batch)`` -> float32."""

    name = "base"
    needs_fit = False

    def __init__(self) -> None:
        self.fitted = not self.needs_fit
        self._cache: dict[tuple, dict[str, torch.Tensor]] = {}

    # subclasses override these three
    def options(self) -> dict:
        return {}

    def tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def _apply(self, x: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def fit(self, images: torch.Tensor) -> Preprocessor:
        """Fit statistics on training images (uint8 (N, C, H, W)); a no-op for stateless recipes."""
        self.fitted = True
        return self

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for key, value in tensors.items():
            setattr(self, key, value)
        self.fitted = True
        self._cache.clear()

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 or float (N, C, H, W) on any device -> float32 (N, C, H, W) on the same device."""
        if not self.fitted:
            raise RuntimeError(f"preprocessor {self.name!r} must be fit before use")
        key = (x.device.type, x.device.index)
        if key not in self._cache:  # statistics moved to the batch's device once
            self._cache[key] = {k: v.to(x.device) for k, v in self.tensors().items()}
        return self._apply(x.float(), self._cache[key])

    __call__ = apply

    def prepare_image(self, image, channels: int, size: tuple[int, int]) -> torch.Tensor:
        """One PIL image -> uint8 (C, H, W) at the model's input size, before :meth:`apply`.

        Default: convert the mode (see :func:`nin.data.images.to_mode`) and resize bilinearly to ``size``.
        Preprocessors with their own geometry (ImageNet: shorter side + centre crop, BGR) override this.
        """
        from nin.data.images import pil_to_tensor

        return pil_to_tensor(image, channels, size)

    def state_dict(self) -> dict:
        return {
            "name": self.name,
            "options": self.options(),
            "tensors": {k: v.detach().cpu().clone() for k, v in self.tensors().items()},
        }


class Identity(Preprocessor):
    """Raw pixel values 0-255 as float."""

    name = "none"

    def _apply(self, x, t):
        return x


class Scale(Preprocessor):
    """Pixels scaled to [0, 1]."""

    name = "scale"

    def _apply(self, x, t):
        return x * (1.0 / 255.0)


class MeanStd(Preprocessor):
    """Per-channel standardisation with mean and std fit on the training split (the modern recipe)."""

    name = "mean_std"
    needs_fit = True

    def __init__(self) -> None:
        super().__init__()
        self.mean = torch.zeros(0)
        self.std = torch.ones(0)

    def tensors(self):
        return {"mean": self.mean, "std": self.std}

    def fit(self, images: torch.Tensor) -> MeanStd:
        x = images.double()
        self.mean = x.mean(dim=(0, 2, 3)).float()
        self.std = x.std(dim=(0, 2, 3)).clamp_min(1e-3).float()
        self._cache.clear()
        return super().fit(images)

    def _apply(self, x, t):
        return (x - t["mean"][:, None, None]) / t["std"][:, None, None]
