"""Run a timm script (its ``validate.py``, ``inference.py``, ``train.py``) with the NIN models registered.

timm's scripts import timm, never nin, and timm 1.0 reads no plugin entry points, so on their own they do not
know the NIN names. This runs the script as ``__main__`` after importing nin::

    python -m nin.integrations.timm_run validate.py --model nin_cifar10 --checkpoint model.safetensors ...
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Run ``argv[0]`` (a script path) with ``argv[1:]`` as its arguments; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    if not Path(argv[0]).is_file():
        print(f"error: no such script: {argv[0]}; give the path of a timm script such as validate.py", file=sys.stderr)
        return 2
    import timm  # noqa: F401  (the hook of `import nin` registers the models as timm loads)

    from nin.integrations.timm_registry import register_all

    register_all()  # in case timm was imported before nin's hook could see it
    sys.argv = argv
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
