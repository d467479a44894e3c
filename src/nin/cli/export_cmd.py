"""``nin export CHECKPOINT --format onnx|onnx-int8|safetensors`` or ``--hub DIR``.

ONNX: a file verified against PyTorch, or its int8 twin. safetensors: the checkpoint as one ``.safetensors`` file
(no pickle). ``--hub DIR``: a Hugging Face Hub model folder (model.safetensors, config.json, README.md, labels.json).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint",
        type=Path,
        help="a .pt checkpoint written by `nin train` or `nin import` (or a .safetensors, a Hub folder, hf-hub:ID)",
    )
    p.add_argument(
        "--format",
        default="onnx",
        choices=("onnx", "onnx-int8", "safetensors"),
        help="onnx: fp32, checked against PyTorch (max abs logit diff <= 1e-4); "
        "onnx-int8: statically quantised for CPU inference; safetensors: the weights and the checkpoint's "
        "metadata, loadable without unpickling (default: onnx)",
    )
    p.add_argument(
        "--hub",
        type=Path,
        default=None,
        metavar="DIR",
        help="write a Hugging Face Hub model folder instead: model.safetensors, config.json, README.md, labels.json",
    )
    p.add_argument("--repo-id", default=None, help="--hub: ORG/NAME the model card's snippets name")
    p.add_argument("--license", default=None, help="--hub: licence of the weights (default: mit; imports: other)")
    p.add_argument("-o", "--output", type=Path, default=None, help="file to write (default: next to the checkpoint)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    p.add_argument("--calib-images", type=int, default=512, help="int8: training images to calibrate on")
    p.add_argument("--calib-dataset", default=None, help="int8: dataset to calibrate on (default: the model's)")
    p.add_argument("--calib-dir", type=Path, default=None, help="int8: calibrate on the images of this folder")
    p.add_argument(
        "--full-range",
        action="store_true",
        help="int8: full 8-bit weights (only for CPUs with VNNI; elsewhere 7-bit weights avoid overflow)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from nin.errors import ConfigError
    from nin.export.onnx import export_onnx

    if args.checkpoint.suffix.lower() == ".onnx":
        raise ConfigError(f"{args.checkpoint} is already an ONNX file; export a .pt checkpoint")
    if args.hub is not None or args.format == "safetensors":
        return _run_hub(args)
    from nin.hub.resolve import is_hub_name

    if args.output is None and (is_hub_name(args.checkpoint) or args.checkpoint.is_dir()):
        raise ConfigError(f"{args.checkpoint} is not a file: name the file to write with -o OUT")
    suffix = ".onnx" if args.format == "onnx" else ".int8.onnx"
    out = args.output or args.checkpoint.with_suffix(suffix)
    if args.format == "onnx":
        r = export_onnx(args.checkpoint, out, opset=args.opset)
        summary = {
            "format": "onnx",
            "path": str(r.path),
            "bytes": r.path.stat().st_size,
            "parity_max_abs_diff": r.max_abs_diff,
            "parity_images": r.n_checked,
            "class_maps": r.class_maps,
        }
        line = (
            f"wrote {r.path} ({summary['bytes'] / 1e6:.1f} MB); onnxruntime vs PyTorch: max abs logit "
            f"difference {r.max_abs_diff:.2g} over {r.n_checked} images (limit 1e-4)"
        )
    else:
        from nin.export.quantize import export_int8

        r = export_int8(
            args.checkpoint,
            out,
            opset=args.opset,
            calib_images=args.calib_images,
            calib_dataset=args.calib_dataset,
            calib_dir=args.calib_dir,
            reduce_range=not args.full_range,
        )
        summary = {
            "format": "onnx-int8",
            "path": str(r.path),
            "bytes": r.path.stat().st_size,
            "calibration_images": r.calibration_images,
            "top1_agreement_with_fp32": r.top1_agreement,
            "max_abs_diff_vs_fp32": r.max_abs_diff,
            "checked_images": r.n_checked,
        }
        line = f"wrote {r.path} ({summary['bytes'] / 1e6:.1f} MB), calibrated on {r.calibration_images} images"
        if r.n_checked:
            line += f"; top-1 agrees with fp32 on {100 * r.top1_agreement:.2f}% of {r.n_checked} test images"
    print(json.dumps(summary) if args.json else line)
    return 0


def _run_hub(args: argparse.Namespace) -> int:
    from nin.errors import ConfigError
    from nin.hub.resolve import is_hub_name

    if args.hub is not None:
        if args.output is not None:
            raise ConfigError("--hub DIR names the folder to write; drop -o/--output")
        from nin.hub.folder import export_hub_folder

        r = export_hub_folder(args.checkpoint, args.hub, repo_id=args.repo_id, license=args.license)
        summary = {
            "format": "hub",
            "path": str(r.path),
            "files": list(r.files),
            "bytes": sum((r.path / f).stat().st_size for f in r.files),
            "parity_max_abs_diff": r.max_abs_diff,
            "metrics": r.metrics,
        }
        line = (
            f"wrote {r.path}/ ({', '.join(r.files)}); reloaded: max abs logit difference {r.max_abs_diff:.2g} "
            f"(limit 1e-6); the card states {', '.join(r.metrics) or 'no metrics (none recorded)'}"
        )
    else:
        from nin.hub.folder import logits_parity
        from nin.hub.safetensors_io import load_safetensors, save_safetensors
        from nin.train.checkpoint import load_checkpoint

        if args.output is None and (is_hub_name(args.checkpoint) or args.checkpoint.is_dir()):
            raise ConfigError(f"{args.checkpoint} is not a file: name the file to write with -o OUT.safetensors")
        out = args.output or args.checkpoint.with_suffix(".safetensors")
        if out.resolve() == args.checkpoint.resolve():
            raise ConfigError(f"{out} is the checkpoint itself; name another file with -o")
        ckpt = load_checkpoint(args.checkpoint)
        save_safetensors(ckpt, out)
        diff = logits_parity(ckpt, load_safetensors(out))
        summary = {"format": "safetensors", "path": str(out), "bytes": out.stat().st_size, "parity_max_abs_diff": diff}
        line = f"wrote {out} ({summary['bytes'] / 1e6:.1f} MB); reloaded: max abs logit difference {diff:.2g}"
    print(json.dumps(summary) if args.json else line)
    return 0
