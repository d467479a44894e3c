"""``nin import caffe|mxnet ...``: turn the published NIN weights into a nin checkpoint."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--out", type=Path, required=True, help="checkpoint to write (.pt)")
    p.add_argument(
        "--preprocess",
        default=None,
        help="nin_imagenet: caffe (default: warp 256, centre crop 224, mean subtraction) or modelhub "
        "(RGB 0-255 resized to 224, no mean); other nets: a preprocessor name (default none)",
    )
    p.add_argument("--mean", type=Path, default=None, help="mean image: Caffe .binaryproto (BGR) or MXNet .nd (RGB)")
    p.add_argument("--labels", type=Path, default=None, help="class names (JSON list/object or one per line)")
    p.add_argument("--fit-dataset", default=None, help="dataset to fit a preprocessor that needs statistics on")
    p.add_argument("--data-root", default=None, help="folder holding that dataset's files")
    p.add_argument("--json", action="store_true", help="print one JSON object describing the import")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="source", metavar="FORMAT", required=True)
    c = sub.add_parser(
        "caffe",
        help="a Caffe Model Zoo .caffemodel (nin_imagenet.caffemodel, cifar10_nin.caffemodel)",
        description="Import a .caffemodel (V1 or V2 layout). Layers are matched by name and element count.",
    )
    c.add_argument("caffemodel", type=Path, help="the .caffemodel file")
    c.add_argument("--prototxt", type=Path, default=None, help="net definition to check the layers against")
    c.add_argument(
        "--arch", required=True, help="nin_imagenet | nin_cifar10 (the file's pools pick the Model Zoo variant)"
    )
    c.add_argument(
        "--keep-bgr",
        action="store_true",
        help="keep conv1 as stored (BGR input) and record BGR in the preprocessing (default: flip conv1 to RGB)",
    )
    _common(c)
    m = sub.add_parser(
        "mxnet",
        help="an MXNet symbol JSON + .params (ModelHub's nin-symbol.json + nin-0000.params)",
        description="Import an MXNet NIN; the graph is checked against the architecture before weights are mapped.",
    )
    m.add_argument("symbol", type=Path, help="the -symbol.json file")
    m.add_argument("params", type=Path, help="the .params file (legacy, V1, V2 or V3 layout)")
    m.add_argument("--arch", default="nin_imagenet", help="architecture the graph must be (default nin_imagenet)")
    _common(m)


def run(args: argparse.Namespace) -> int:
    from nin.interop.importer import import_caffe, import_mxnet
    from nin.train.checkpoint import save_checkpoint

    common = {
        "mean": args.mean,
        "preprocess": args.preprocess,
        "labels": args.labels,
        "fit_dataset": args.fit_dataset,
        "data_root": args.data_root,
    }
    if args.source == "caffe":
        ckpt = import_caffe(args.caffemodel, args.arch, prototxt=args.prototxt, keep_bgr=args.keep_bgr, **common)
    else:
        ckpt = import_mxnet(args.symbol, args.params, args.arch, **common)
    path = save_checkpoint(ckpt, args.out)
    summary = {
        "checkpoint": str(path),
        "model": ckpt["model"]["name"],
        "classes": len(ckpt["classes"]),
        "input": ckpt["input"],
        "source": ckpt["source"],
    }
    if args.json:
        print(json.dumps(summary))
    else:
        src = ckpt["source"]
        print(
            f"imported {src['format']} {src['layout']} weights as {summary['model']} -> {path}\n"
            f"preprocessing: {src['preprocess']}"
        )
    return 0
