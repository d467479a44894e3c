"""ModelHub compatibility: the config.json generated from a model, its legal texts and the prediction body.

ModelHub (modelhub.ai) serves NIN behind one API; its contract is the config.json (validated by ModelHub's
``config_schema.json``) and the ``{"output": [...], "timestamp", "processing_time", "model"}`` body. We
generate both from the checkpoint instead of writing them by hand.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from importlib import resources

import torch

from nin.serve.predictor import ModelInfo

# The MIME types nin decodes, with Pillow's format behind each (ModelHub's own NIN config also lists the
# non-standard image/jpg). A generated config lists them all; a contribution's card may list fewer.
MIME_FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/jpg": "JPEG",
    "image/gif": "GIF",
    "image/bmp": "BMP",
    "image/tiff": "TIFF",
    "image/webp": "WEBP",
}
INPUT_FORMATS = list(MIME_FORMATS)

PUBLICATION = {
    "title": "Network In Network",
    "source": "arXiv",
    "year": 2014,
    "authors": "Min Lin, Qiang Chen, Shuicheng Yan",
    "abstract": (
        "We propose a novel deep network structure called 'Network In Network' (NIN) to enhance model "
        "discriminability for local patches within the receptive field. The conventional convolutional layer "
        "uses linear filters followed by a nonlinear activation function to scan the input. Instead, we build "
        "micro neural networks with more complex structures to abstract the data within the receptive field. "
        "We instantiate the micro neural network with a multilayer perceptron, which is a potent function "
        "approximator. The feature maps are obtained by sliding the micro networks over the input in a similar "
        "manner as CNN; they are then fed into the next layer. Deep NIN can be implemented by stacking mutiple "
        "of the above described structure. With enhanced local modeling via the micro network, we are able to "
        "utilize global average pooling over feature maps in the classification layer, which is easier to "
        "interpret and less prone to overfitting than traditional fully connected layers. We demonstrated the "
        "state-of-the-art classification performances with NIN on CIFAR-10 and CIFAR-100, and reasonable "
        "performances on SVHN and MNIST datasets."
    ),
    "url": "https://arxiv.org/abs/1312.4400",
    "google_scholar": "https://scholar.google.com/scholar?oi=bibs&hl=en&cites=3211704355758672916&as_sdt=5",
    "bibtex": (
        "@article{DBLP:journals/corr/LinCY13, author = {Min Lin and Qiang Chen and Shuicheng Yan}, "
        "title = {Network In Network}, journal = {CoRR}, volume = {abs/1312.4400}, year = {2013}, "
        "url = {http://arxiv.org/abs/1312.4400}, archivePrefix = {arXiv}, eprint = {1312.4400}}"
    ),
}

# dataset name prefix -> (application area, data type, data source)
_DATASETS = {
    "mnist": ("Handwritten digits (MNIST)", "Image/Grayscale", "http://yann.lecun.com/exdb/mnist/"),
    "fashion_mnist": (
        "Fashion articles (Fashion-MNIST)",
        "Image/Grayscale",
        "https://github.com/zalandoresearch/fashion-mnist",
    ),
    "cifar100": ("Small natural images (CIFAR-100)", "Image/Photo", "https://www.cs.toronto.edu/~kriz/cifar.html"),
    "cifar10": ("Small natural images (CIFAR-10)", "Image/Photo", "https://www.cs.toronto.edu/~kriz/cifar.html"),
    "svhn": ("House numbers (SVHN)", "Image/Photo", "http://ufldl.stanford.edu/housenumbers/"),
    "imagenet": ("ImageNet", "Image/Photo", "http://www.image-net.org/"),
}
_ARCH_DESCRIPTION = (
    "Network In Network: stacked mlpconv blocks (a convolution followed by 1x1 'cccp' convolutions, a small "
    "multilayer perceptron slid over every patch) whose last layer emits one confidence map per class; global "
    "average pooling turns each map into a class score, with no fully connected layer."
)


def model_id(info: ModelInfo) -> str:
    """A stable UUID for a model file: the same weights always get the same id."""
    key = info.sha256 or f"{info.name}:{len(info.classes)}:{info.input}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"nin:{key}"))


def _dataset_facts(info: ModelInfo) -> tuple[str, str, str, str]:
    dataset = str(info.train.get("dataset") or info.extra.get("dataset") or "")
    if not dataset and info.name == "nin_imagenet":
        dataset = "imagenet"
    key = dataset.removeprefix("synthetic_")
    for prefix, facts in _DATASETS.items():
        if key.startswith(prefix):
            return (dataset, *facts)
    data_type = "Image/Grayscale" if int(info.input["channels"]) == 1 else "Image/Photo"
    return dataset or "unknown", dataset or "Image classification", data_type, ""


def meta_name(info: ModelInfo) -> str:
    """ModelHub's naming rule: small caps with '-' spacers (nin_mnist -> nin-mnist)."""
    return info.name.lower().replace("_", "-")


def build_config(info: ModelInfo, *, max_side: int, top: int = 5, sort: bool = True) -> dict:
    """The model's ModelHub config.json (schema v1-0-0, input under ``single`` as ModelHub >= 0.4)."""
    dataset, area, data_type, source = _dataset_facts(info)
    c, h, w = (int(info.input[k]) for k in ("channels", "height", "width"))
    k = len(info.classes)
    acc = info.metrics.get("accuracy")
    trained = f" Test accuracy {100 * float(acc):.2f}% on {dataset}." if isinstance(acc, (int, float)) else ""
    meta = {
        "name": meta_name(info),
        "application_area": area,
        "task": "Classification",
        "task_extended": f"{k}-class image classification ({dataset})",
        "data_type": data_type,
    }
    if source:
        meta["data_source"] = source
    provenance = info.extra.get("provenance")
    if not isinstance(provenance, str) or not provenance:
        config_name = info.train.get("name")
        provenance = f"trained with nin {info.nin_version}" + (f" (config {config_name})" if config_name else "")
    single = {
        "format": list(INPUT_FORMATS),
        # [channels, width, height] as ModelHub orders them; any size is resized to the model's input.
        "dim_limits": [{"min": 1, "max": 4}, {"min": 1, "max": max_side}, {"min": 1, "max": max_side}],
        "description": (
            f"One image of any size and mode; converted to {'grayscale' if c == 1 else 'RGB'} and resized to "
            f"{w}x{h} ({info.preprocess} preprocessing) before inference."
        ),
    }
    return {
        "id": model_id(info),
        "meta": meta,
        "publication": dict(PUBLICATION),
        "model": {
            "description": f"{_ARCH_DESCRIPTION} Model {info.name}, {c}x{h}x{w} input, {k} classes.{trained}",
            "provenance": provenance,
            "architecture": "Convolutional Neural Network (CNN)",
            "learning_type": "Supervised learning",
            "format": ".onnx" if info.format == "onnx" else ".pt",
            "io": {
                "input": {"format": list(INPUT_FORMATS), "single": single},
                "output": [
                    {
                        "name": "probabilities",
                        "type": "label_list",
                        "description": f"Probabilities of the {k} classes ({dataset}).",
                    }
                ],
            },
        },
        "modelhub": {
            "top": top,
            "sort": sort,
            "allow_user_test": True,
            "allow_sample_demo": True,
            "nin": nin_section(info, info.classes),
        },
    }


def nin_section(info: ModelInfo, classes: list[str]) -> dict:
    """``config["modelhub"]["nin"]``: what nin's page shows (ModelHub leaves the ``modelhub`` section free)."""
    c, h, w = (int(info.input[k]) for k in ("channels", "height", "width"))
    return {
        "model": info.name,
        "classes": list(classes),
        "input": {"channels": c, "height": h, "width": w},
        "preprocess": info.preprocess,
        "format": info.format,
        "nin_version": info.nin_version,
        "metrics": {key: v for key, v in info.metrics.items() if isinstance(v, (int, float, str))},
    }


def _text(name: str) -> str:
    return resources.files("nin.serve.legal").joinpath(name).read_text(encoding="utf-8")


def legal(info: ModelInfo, sample_data_license: str, model_license: str | None = None) -> dict:
    """ModelHub's four legal texts (``model_license``: a contribution's own; else from the file or generated)."""
    model_license = model_license or info.extra.get("license")
    if not isinstance(model_license, str) or not model_license:
        dataset, *_ = _dataset_facts(info)
        model_license = _text("model_license.txt").format(name=info.name, dataset=dataset)
    return {
        "modelhub_license": _text("engine_license.txt"),
        "modelhub_acknowledgements": _text("acknowledgements.txt"),
        "model_license": model_license,
        "sample_data_license": sample_data_license,
    }


def timestamp() -> str:
    """ModelHub's timestamp format: 2019-04-02-10-03-47-123456."""
    return datetime.now().strftime("%Y-%m-%d-%H-%M-%S-%f")


def prediction_body(
    probs: torch.Tensor,
    classes: list[str],
    config: dict,
    processing_time: float,
    top: int | None = None,
    sort: bool = False,
) -> dict:
    """ModelHub's prediction body for one image's probabilities (K,).

    Without ``top``/``sort`` every class is listed in class order, as ModelHub's engine returns a model's
    output; ``top`` keeps the ``top`` most probable classes, ``sort`` orders the list by probability.
    """
    values = [float(p) for p in probs.tolist()]
    order = list(range(len(values)))
    if top is not None:
        order = sorted(order, key=lambda i: -values[i])[:top]
        if not sort:
            order.sort()
    elif sort:
        order.sort(key=lambda i: -values[i])
    output = config["model"]["io"]["output"][0]
    return {
        "output": [
            {
                "prediction": [{"label": classes[i], "probability": values[i]} for i in order],
                "shape": [len(order)],
                "type": output["type"],
                "name": output["name"],
                "description": output.get("description", ""),
            }
        ],
        "timestamp": timestamp(),
        "processing_time": round(processing_time, 3),
        "model": {"id": config["id"], "name": config["meta"]["name"]},
    }
