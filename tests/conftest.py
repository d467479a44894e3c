import os

import pytest
import torch

# Small, deterministic, and quiet on a 2-core machine.
torch.set_num_threads(min(2, os.cpu_count() or 1))
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def tiny_data():
    """A learnable 10-class 1x28x28 dataset small enough to train in seconds."""
    from nin.data.synthetic import synthetic_dataset

    return synthetic_dataset((1, 28, 28), 10, 96, seed=1, name="tiny:train"), synthetic_dataset(
        (1, 28, 28), 10, 40, seed=2, name="tiny:test"
    )
