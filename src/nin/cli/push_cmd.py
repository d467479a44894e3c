"""``nin push DIR ORG/NAME``: upload a Hub folder written by ``nin export --hub`` to the Hugging Face Hub."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", type=Path, help="a folder written by `nin export CKPT --hub DIR`")
    p.add_argument("repo_id", metavar="ORG/NAME", help="the Hub model repository (created if it does not exist)")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--revision", default=None, help="branch to upload to (created if needed; default: main)")
    p.add_argument("--token", default=None, help="Hub token (default: huggingface_hub's, e.g. HF_TOKEN)")
    p.add_argument("--message", default=None, help="commit message")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from nin.hub.push import push_folder

    info = push_folder(
        args.folder,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        token=args.token,
        commit_message=args.message,
    )
    url = str(getattr(info, "commit_url", "") or f"https://huggingface.co/{args.repo_id}")
    summary = {"repo_id": args.repo_id, "revision": args.revision or "main", "commit_url": url}
    print(json.dumps(summary) if args.json else f"pushed {args.folder} to {args.repo_id}: {url}")
    return 0
