"""The inventory ``nin data info`` shows: files found, sizes, checksum verdicts, usable splits, what to do."""

from __future__ import annotations

from nin.data.checksums import check_bytes, check_file
from nin.data.locate import find_archive, find_file, manual_files
from nin.data.paths import data_root, dataset_dir, fetch_command, search_dirs
from nin.data.sources import Source
from nin.errors import DataError


def human_size(n: int | None) -> str:
    """Bytes for people: ``170.5 MB``, ``28.9 kB``, ``512 bytes``."""
    if n is None:
        return "? bytes"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def inspect(source: Source, root=None, check: bool = True) -> dict:
    """What ``nin data info`` shows: files found, sizes, checksum verdicts, usable splits, what to do.

    ``check=False`` only looks for the files (fast; used to decide whether a reproduction row can run).
    """
    files: list[dict] = []
    usable: dict[str, bool] = {}
    if source.archives:
        found = find_archive(source, root)
        if found is None:
            files.append({"name": " or ".join(a.file.name for a in source.archives), "status": "missing"})
            usable = dict.fromkeys(source.split_files, False)
        else:
            a = found.archive
            entry = {"name": found.path.name, "path": str(found.path), "status": "ok", "variant": a.kind}
            files.append(entry)
            ok_members: set[str] = set()
            if found.extracted:
                entry["size"] = sum(p.stat().st_size for p in found.path.iterdir() if p.is_file())
                for m in a.members:
                    p = found.path / m.name
                    row = {"name": f"{a.folder}/{m.name}", "path": str(p), "status": "ok"}
                    if not p.is_file():
                        row["status"] = "missing"
                    else:
                        row["size"] = p.stat().st_size
                        if check:
                            try:
                                check_bytes(p.read_bytes(), str(p), m, source, root)
                                row["detail"] = "md5 ok" if m.md5 else "size ok (no md5 published)"
                            except DataError as exc:
                                row.update(status="bad", detail=str(exc))
                    if row["status"] == "ok":
                        ok_members.add(m.name)
                    files.append(row)
                entry["status"] = "ok" if len(ok_members) == len(a.members) else "incomplete"
            else:
                entry["size"] = found.path.stat().st_size
                if check:
                    try:
                        entry["detail"] = check_file(found.path, a.file, source, root)
                    except DataError as exc:
                        entry.update(status="bad", detail=str(exc))
                if entry["status"] == "ok":
                    ok_members = {m.name for m in a.members}
            usable = {s: all(n in ok_members for n in need) for s, need in source.split_files.items()}
    else:
        ok_files: set[str] = set()
        for spec in source.files:
            p = find_file(source, spec, root)
            row: dict = {"name": spec.name, "status": "missing"}
            if p is not None:
                row.update(name=p.name, path=str(p), size=p.stat().st_size, status="ok")
                if check:
                    try:
                        row["detail"] = check_file(p, spec, source, root)
                    except DataError as exc:
                        row.update(status="bad", detail=str(exc))
            if row["status"] == "ok":
                ok_files.add(spec.name)
            files.append(row)
        usable = {s: all(n in ok_files for n in need) for s, need in source.split_files.items()}
    return {
        "dataset": source.name,
        "title": source.title,
        "root": str(data_root(root)),
        "dir": str(dataset_dir(source, root)),
        "searched": [str(d) for d in search_dirs(source, root)],
        "files": files,
        "splits": usable,
        "ready": bool(usable) and all(usable.values()),
        "checked": check,
        "fetch": fetch_command(source, root),
        "manual": [
            {
                "name": f.name,
                "url": f.urls[0] if f.urls else None,
                "md5": f.md5,
                "size": f.size,
                "human": human_size(f.size),
            }
            for f in manual_files(source)
        ],
        "note": source.note,
    }
