"""The Hub folder's ``README.md``: a model card written with huggingface_hub's ``ModelCard`` classes.

The YAML header is built by ``ModelCardData`` (with ``EvalResult`` entries, which become the ``model-index`` the
Hub shows as the model's results), so it is exactly what the Hub parses. Only metrics measured for the checkpoint
(its ``metrics`` entry) are stated; a checkpoint without any says so and states none.

``library_name`` is ``nin``: the Hub's "Use this model" snippet for ``timm`` would call ``timm.create_model`` without
``import nin``, which registers the architecture, and fail; the card's body shows the working calls instead, and
the ``timm`` tag keeps the model listed with timm's.
"""

from __future__ import annotations

import math

from nin.extras import require

LIBRARY_NAME = "nin"
PAPER = "arXiv:1312.4400"
BIBTEX = """@inproceedings{lin2014network,
  title     = {Network In Network},
  author    = {Lin, Min and Chen, Qiang and Yan, Shuicheng},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2014},
  eprint    = {1312.4400},
  archivePrefix = {arXiv},
  url       = {https://arxiv.org/abs/1312.4400}
}"""
# Checkpoint metric key -> (model-index metric type, its display name). Only these are measurements.
MEASURES = {"accuracy": ("accuracy", "Top-1 accuracy"), "loss": ("loss", "Cross-entropy loss")}
IMPORTED_LICENSE = "other"


def measured(metrics: dict) -> dict[str, float]:
    """The measured, finite metrics of a checkpoint that a card states."""
    out = {}
    for key in MEASURES:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


def card_license(ckpt: dict, given: str | None) -> str:
    """The licence the card states: the one given, else MIT for nin's own training, ``other`` for imports."""
    if given:
        return given
    return IMPORTED_LICENSE if ckpt.get("source") else "mit"


def eval_results(ckpt: dict, model_name: str):
    """``EvalResult`` entries for the measured metrics (the test split the checkpoint's config records)."""
    hub = require("huggingface_hub", "writing a model card")
    train = ckpt.get("train") or {}
    metrics = ckpt.get("metrics") or {}
    dataset = str(train.get("dataset") or "unknown")
    n = metrics.get("n")
    return [
        hub.EvalResult(
            task_type="image-classification",
            task_name="Image Classification",
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split=str(train.get("test_split") or "test"),
            metric_type=MEASURES[key][0],
            metric_name=MEASURES[key][1] + (f" (n={n})" if isinstance(n, int) and n else ""),
            metric_value=value,
        )
        for key, value in measured(metrics).items()
    ]


def _provenance(ckpt: dict, license_: str) -> str:
    source = ckpt.get("source")
    if not source:
        return "Trained with nin" + (f" (config `{ckpt['train'].get('name')}`)." if ckpt.get("train") else ".")
    files = source.get("files") or []
    lines = [
        f"Imported with `nin import` from the {source.get('format', 'original')} files listed below, published "
        "by their authors (see the paper); nin converted them and did not retrain them.",
        "",
        "| file | bytes | md5 |",
        "|---|---:|---|",
        *(f"| `{f.get('file', '?')}` | {f.get('bytes', '')} | `{f.get('md5', '')}` |" for f in files),
        "",
        f"Recorded preprocessing: {source.get('preprocess', ckpt['preprocess'].get('name', ''))}.",
    ]
    if license_ == IMPORTED_LICENSE:
        lines += [
            "",
            "**Licence:** the terms under which the original weights were published apply; nin states none of its "
            "own for them. Check the publisher's terms before you redistribute (and pass `--license` to "
            "`nin export --hub` to name them here).",
        ]
    return "\n".join(lines)


def _usage(repo_id: str, name: str) -> str:
    return f"""```python
import nin

model = nin.from_pretrained("{repo_id}")           # nn.Module, eval mode
predictor = nin.Predictor.from_checkpoint("hf-hub:{repo_id}")  # with nin's exact preprocessing and labels
predictor.predict("image.png", top_k=5)
```

```bash
nin predict hf-hub:{repo_id} image.png   # also: nin eval / nin serve / nin classmaps hf-hub:{repo_id}
```

timm (`import nin` registers the NIN family in timm's registry):

```python
import nin, timm

model = timm.create_model("hf-hub:{repo_id}", pretrained=True)
```

torch.hub (from a checkout of nin's repository, or its GitHub name):

```python
import torch

model = torch.hub.load("path/to/nin", "{name}", source="local", pretrained="hf-hub:{repo_id}")
```"""


def build_card(ckpt: dict, config: dict, repo_id: str, license_: str | None = None):
    """The model card (a ``huggingface_hub.ModelCard``) of a checkpoint and its ``config.json``."""
    hub = require("huggingface_hub", "writing a model card")
    name = ckpt["model"]["name"]
    lic = card_license(ckpt, license_)
    train = ckpt.get("train") or {}
    results = eval_results(ckpt, name)
    data = hub.ModelCardData(
        library_name=LIBRARY_NAME,
        license=lic,
        tags=["image-classification", "network-in-network", "nin", "timm", "pytorch", "safetensors", name],
        datasets=[train["dataset"]] if train.get("dataset") else None,
        metrics=[MEASURES[k][0] for k in measured(ckpt.get("metrics") or {})] or None,
        pipeline_tag="image-classification",
        model_name=repo_id.split("/")[-1],
        eval_results=results or None,
    )
    if lic == IMPORTED_LICENSE:
        data.license_name = "original-publisher-terms"
    cfg = config["pretrained_cfg"]
    m = measured(ckpt.get("metrics") or {})
    if m:
        rows = "\n".join(f"| {MEASURES[k][1]} | {v:.4f} |" for k, v in m.items())
        split = f"{train.get('dataset', 'its dataset')} / {train.get('test_split', 'test')}"
        results_md = f"Measured on {split} when the checkpoint was written:\n\n| metric | value |\n|---|---:|\n{rows}"
    else:
        results_md = "This checkpoint records no measured metrics; the card states none."
    exact = (
        "timm's transforms with the `mean`/`std` of config.json reproduce it."
        if config.get("nin_preprocess_exact")
        else "timm's transforms do **not** reproduce it exactly (config.json's `mean`/`std` are the nearest "
        "per-channel values); nin's own loaders always apply the recorded preprocessing."
    )
    c, h, w = cfg["input_size"]
    pre_name = config["nin_preprocess"]
    body = f"""
# {repo_id.split("/")[-1]}

`{name}`: a Network In Network (Lin, Chen, Yan, [{PAPER}](https://arxiv.org/abs/1312.4400)) image classifier,
{len(ckpt["classes"])} classes, input {c}x{h}x{w}. Preprocessing recorded with the weights: `{pre_name}`;
{exact}

## Results

{results_md}

## Provenance

{_provenance(ckpt, lic)}

## How to use

{_usage(repo_id, name)}

Files: `model.safetensors` (weights; the preprocessing tensors under `preprocess.*`; everything else as JSON
in its `nin` metadata), `config.json` (architecture, labels, input, timm's `pretrained_cfg`), `labels.json`.

## Citation

```bibtex
{BIBTEX}
```
"""
    return hub.ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
