"""Hub-ready weights: safetensors files, Hugging Face Hub repository folders, ``hf-hub:`` names.

- :mod:`nin.hub.safetensors_io`: a nin checkpoint as one ``.safetensors`` file (tensors + a ``nin`` JSON entry
  in its string metadata); loading never unpickles.
- :mod:`nin.hub.folder`: ``nin export CKPT --hub DIR`` (model.safetensors, config.json, README.md, labels.json).
- :mod:`nin.hub.resolve`: ``hf-hub:ORG/NAME[@REV]`` and Hub folders to the file the loaders read.
- :mod:`nin.hub.pretrained`: :func:`nin.from_pretrained`.
- :mod:`nin.hub.push`: ``nin push DIR ORG/NAME``.

``safetensors`` and ``huggingface_hub`` belong to the ``hub`` extra and are imported only when used.
"""
