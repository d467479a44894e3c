"""The names an exported ONNX graph carries: its input, its outputs and the metadata key.

Writers (``nin export``, int8) and readers (serving, ``nin eval FILE.onnx``, the latency bench) share them
from here; this module imports nothing.
"""

ONNX_INPUT = "pixels"  # float32 (N, C, H, W), raw 0-255 values; preprocessing is inside the graph
ONNX_LOGITS = "logits"
ONNX_MAPS = "class_maps"
ONNX_META_KEY = "nin"  # metadata_props key holding the JSON description (classes, input, preprocess, ...)
