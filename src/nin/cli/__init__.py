"""The one console script ``nin``: a thin shell that dispatches subcommands from a table.

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``. ``main``
imports only the module of the command it runs (``nin --help`` imports none): the table below names each
module by its path, so no command pays for the imports of another.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

from nin._version import __version__
from nin.errors import NinError

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("nin.cli.list_cmd", "list models, configs, datasets and preprocessors"),
    "train": ("nin.cli.train_cmd", "train a model (no arguments: NIN-MNIST quickstart on the embedded data)"),
    "eval": ("nin.cli.eval_cmd", "evaluate a checkpoint on its test split"),
    "import": ("nin.cli.import_cmd", "import published weights (Caffe .caffemodel, MXNet .params) as a checkpoint"),
    "bench": ("nin.cli.bench_cmd", "measure training/eval speed vs the machine's peak, latency, time-to-accuracy"),
    "classmaps": ("nin.cli.classmaps_cmd", "draw the class maps (paper Fig. 4) and CAM overlays of images"),
    "report": ("nin.cli.report_cmd", "render a run folder as an HTML report with learning curves"),
    "predict": (
        "nin.cli.predict_cmd",
        "classify images, folders and @LIST files with a checkpoint or an ONNX export (CSV/JSONL/Parquet out)",
    ),
    "serve": ("nin.cli.serve_cmd", "serve a model: ModelHub-compatible REST API and a web page"),
    "export": (
        "nin.cli.export_cmd",
        "export a checkpoint to ONNX (fp32, verified), int8 ONNX, safetensors or a Hugging Face Hub folder",
    ),
    "push": ("nin.cli.push_cmd", "upload a Hub folder (`nin export --hub DIR`) to the Hugging Face Hub"),
    "data": ("nin.cli.data_cmd", "datasets: list, info NAME (what is found, checksums, what to do), fetch NAME"),
    "reproduce": ("nin.cli.reproduce_cmd", "run the paper's experiments and write report.md/.json + a bar chart"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``nin`` parser: every subcommand with its arguments, or with ``only``, that one alone with them.

    Args:
        only: the one subcommand whose module is imported to add its arguments (``""``: none); the others
            are listed with their help line all the same.
    """
    parser = argparse.ArgumentParser(
        prog="nin", description="Network In Network (Lin, Chen, Yan 2013): train, reproduce, explain, serve."
    )
    parser.add_argument("--version", action="version", version=f"nin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if only is None or name == only:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The global options take no value, so the first word that is not an option names the command.
    command = next((a for a in argv if not a.startswith("-")), "")
    parser = build_parser(command if command in COMMANDS else "")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(message)s" if args.verbose else "%(message)s",
        stream=sys.stderr,
    )
    if not args.command:
        parser.print_help()
        return 0
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except NinError as exc:
        print(f"nin {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" while writing {exc.filename}" if exc.filename else ""
        print(
            f"nin {args.command}: error: no space left on the device{where}; free space and run again", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        print(f"nin {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
