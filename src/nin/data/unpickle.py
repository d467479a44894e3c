"""A restricted unpickler for the CIFAR python batches: it builds dicts, lists, strings, numbers and numpy
arrays, and refuses every other global, so a pickle that carries code cannot run it (the Python docs'
warning on the ``pickle`` module: never unpickle data from an untrusted source as is).
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from nin.errors import DataError


def _numpy_globals() -> dict[tuple[str, str], object]:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
        from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    # The official batches were written by Python 2 (numpy.core); re-pickled copies may name numpy._core.
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = _reconstruct
        allowed[(f"{core}.numeric", "_frombuffer")] = _frombuffer  # protocol-5 arrays
    return allowed


class _Refused(pickle.UnpicklingError):
    """A global outside the allowed set."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, allowed: dict[tuple[str, str], object]) -> None:
        super().__init__(file, encoding="bytes")  # Python 2 str -> bytes, as the CIFAR page says
        self._allowed = allowed

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None

    def persistent_load(self, pid):
        raise _Refused("a persistent reference")


def safe_unpickle(data: bytes, where: str) -> object:
    """Unpickle ``data`` allowing only plain containers, numbers, strings and numpy arrays.

    Raises:
        DataError: the file asks for any other Python object (it could run code), or is not a pickle.
    """
    if data[:1] != pickle.PROTO:  # every batch starts with a protocol marker (the official ones: protocol 2)
        raise DataError(f"{where} is not a valid pickle (it starts with {data[:8]!r}): it is damaged or foreign")
    try:
        return _RestrictedUnpickler(io.BytesIO(data), _numpy_globals()).load()
    except _Refused as exc:
        raise DataError(
            f"{where} is not a plain data pickle: it asks to load {exc}, which a dataset file never "
            "needs; refusing to unpickle it (it could run code). Use the official file"
        ) from None
    except pickle.UnpicklingError as exc:
        raise DataError(f"{where} is not a valid pickle ({exc}): it is damaged or not the official file") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError, MemoryError) as exc:
        raise DataError(
            f"{where} cannot be unpickled ({type(exc).__name__}: {exc}): it is truncated, damaged or foreign"
        ) from None


def as_str_keys(d: object, where: str) -> dict[str, object]:
    """A batch dict with ``bytes`` keys (Python 2 pickles) as ``str`` keys; anything but a dict is refused."""
    if not isinstance(d, dict):
        raise DataError(f"{where} holds a {type(d).__name__}, not the dict of a CIFAR batch")
    return {(k.decode("latin-1") if isinstance(k, bytes) else str(k)): v for k, v in d.items()}
