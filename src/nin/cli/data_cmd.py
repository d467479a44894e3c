"""``nin data``: ``list`` the datasets, ``info NAME`` (what is on disk, sizes, md5 verdicts, what to do),
``fetch NAME`` (download the official files with progress, resume and md5 check).
"""

from __future__ import annotations

import argparse
import json
import sys

_ROOT_HELP = "data root (default: $NIN_DATA_ROOT or ~/.local/share/nin/datasets); files go in ROOT/NAME/"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="every dataset and whether its files are found", description="list datasets")
    ls.add_argument("--root", "--data-root", dest="root", default=None, help=_ROOT_HELP)
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    info = sub.add_parser(
        "info",
        help="what is found for a dataset, its size, whether checksums match, and what to do",
        description="show what is found for a dataset, its size, whether checksums match, and what to do; "
        "exit code 0 when every split is usable, 1 otherwise",
    )
    info.add_argument("name", help="dataset name (see `nin data list`)")
    info.add_argument("--root", "--data-root", dest="root", default=None, help=_ROOT_HELP)
    info.add_argument("--no-check", action="store_true", help="only look for the files (skip the md5 checks)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    fetch = sub.add_parser(
        "fetch",
        help="download a dataset's official files (progress, resume, md5 check)",
        description="download a dataset's official files with progress, resume and md5 check; offline, "
        "it stops at once and says which files to place by hand, and where",
    )
    fetch.add_argument("name", help="cifar10 | cifar100 | svhn | mnist | fashion_mnist")
    fetch.add_argument("--root", "--data-root", dest="root", default=None, help=_ROOT_HELP)
    fetch.add_argument("--variant", default=None, choices=["python", "binary"], help="CIFAR: which version")
    fetch.add_argument(
        "--mirror", action="append", default=[], metavar="URL", help="a base URL tried before the official ones"
    )
    fetch.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    return {"list": _list, "info": _info, "fetch": _fetch}[args.data_command](args)


def _list(args: argparse.Namespace) -> int:
    from nin.data.inventory import inspect
    from nin.data.registry import dataset_info, list_datasets
    from nin.data.sources import SOURCES

    rows = {}
    for name in list_datasets():
        if name in SOURCES:
            state = inspect(SOURCES[name], args.root, check=False)
            status = "found" if state["ready"] else ("partial" if any(state["splits"].values()) else "not found")
        elif name.startswith("imagefolder"):
            status = "your folder (--set data_root=DIR)"
        else:
            status = "built in"
        rows[name] = {"status": status, "description": dataset_info(name).description}
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for name, row in rows.items():
        print(f"  {name:<20} {row['status']:<12} {row['description']}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from nin.data.inventory import inspect
    from nin.data.registry import dataset_info
    from nin.data.sources import SOURCES

    info = dataset_info(args.name)  # unknown names raise DataError listing the valid ones
    if args.name not in SOURCES:
        return _info_builtin(args, info)
    state = inspect(SOURCES[args.name], args.root, check=not args.no_check)
    if args.json:
        print(json.dumps(state, indent=2))
    else:
        print(render_info(state, info.description))
    return 0 if state["ready"] else 1


def _info_builtin(args: argparse.Namespace, info) -> int:
    if not args.name.startswith("imagefolder"):
        state = {"dataset": args.name, "ready": True, "files": [], "note": "built in: no files needed"}
        print(json.dumps(state) if args.json else f"{args.name}: {info.description}\n  status  ready (built in)")
        return 0
    from nin.data.imagefolder import inspect_image_folder
    from nin.errors import DataError

    if not args.root:
        raise DataError(f"{args.name} reads your own images: nin data info {args.name} --root DIR")
    found = inspect_image_folder(args.root)
    root, counts, ready = found["root"], found["classes"], found["ready"]
    if args.json:
        print(json.dumps({"dataset": args.name, **found}))
    else:
        print(f"{args.name}: {info.description}\n  folder  {root}")
        for s, c in counts.items():
            total = sum(c.values())
            print(f"  {s:<6}  {len(c)} classes, {total:,} images: " + ", ".join(f"{k} {v}" for k, v in c.items()))
        print("  status  " + ("ready" if ready else "no class sub-folders with PNG/JPEG images found"))
    return 0 if ready else 1


def render_info(state: dict, description: str = "") -> str:
    """The text of ``nin data info``: where it looked, what it found, and exactly what to do."""
    from nin.data.inventory import human_size

    lines = [f"{state['title']} ({state['dataset']}): {description}".rstrip(": ")]
    lines.append(f"  data root  {state['root']}   (change with --root DIR or $NIN_DATA_ROOT)")
    lines.append(f"  looked in  {', '.join(state['searched'])}")
    usable = [s for s, ok in state["splits"].items() if ok]
    bad = [f for f in state["files"] if f["status"] not in ("ok", "missing")]
    if state["ready"] and not bad:
        status = f"ready: splits {', '.join(usable)}" + ("" if state["checked"] else " (md5 not checked: --no-check)")
    elif usable:
        status = (
            f"partly usable: splits {', '.join(usable)}; not {', '.join(s for s in state['splits'] if s not in usable)}"
        )
    elif bad:
        status = "FILES DAMAGED OR WRONG (see below)"
    else:
        status = "NOT FOUND"
    lines.append(f"  status     {status}")
    lines.append("  files")
    for f in state["files"]:
        size = human_size(f["size"]) if "size" in f else ""
        verdict = f.get("detail", f["status"]) if f["status"] == "ok" else f["status"].upper()
        lines.append(f"    {f['name']:<34} {size:>9}  {verdict}" + (f"  ({f['path']})" if f.get("path") else ""))
        if f["status"] == "bad":
            lines.append(f"      -> {f['detail']}")
    if not state["ready"] or bad:
        dest = state["dir"]
        manual = state["manual"]
        lines.append("  what to do")
        lines.append(f"    online:  {state['fetch']}")
        lines.append(f"             (downloads from the official site into {dest}/ and checks the md5)")
        one_of = len(manual) > 1 and state["dataset"].startswith("cifar")
        lines.append(
            "    offline: download "
            + ("ONE of these" if one_of else "these")
            + f" by hand (on any machine online) and put {'it' if one_of else 'them'}, unchanged, in {dest}/"
        )
        for m in manual:
            lines.append(f"               {m['url']}   {m['human']}   md5 {m['md5']}")
        if state.get("note"):
            lines.append(f"             ({state['note']})")
        lines.append(f"             then check with `nin data info {state['dataset']}`")
    return "\n".join(lines)


def _fetch(args: argparse.Namespace) -> int:
    from nin.data.fetch import fetch_dataset

    progress = not args.no_progress and sys.stderr.isatty()
    paths = fetch_dataset(args.name, args.root, variant=args.variant, mirrors=args.mirror, progress=progress)
    for p in paths:
        print(f"ok  {p}")
    print(f"{args.name}: ready; check with `nin data info {args.name}`")
    return 0
