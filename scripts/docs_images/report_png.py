"""docs/img/report.png: the top of ``nin report``'s page for a run folder, as a browser shows it.

    nin train --out runs/quickstart                   # on an otherwise idle machine: the timings show in the picture
    python scripts/docs_images/report_png.py runs/quickstart docs/img/report.png

Writes RUN_DIR/report.html with ``nin report``, opens it in headless Chromium (Debian's package, driven by
Playwright, as tests/test_browser.py does) 1200 px wide, where the key numbers sit in one row and the plots two
by two, takes the top 1640 px, scales them to 900 x 1230 and stores them with a 256-colour palette (the plots are
flat colours: a third of the size of the RGB screenshot).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from nin.viz.report import build_report

VIEWPORT = (1200, 1640)  # px: the page's widest layout (main is at most 1180 px wide)
SIZE = (900, 1230)  # px of the picture in the docs
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="a run folder written by `nin train --out DIR`")
    ap.add_argument("out", type=Path, help="the PNG to write")
    args = ap.parse_args()
    html = build_report(args.run_dir).html
    chromium = os.environ.get("NIN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]})
        page.goto(html.resolve().as_uri())
        png = page.screenshot(full_page=False)
        browser.close()
    shot = Image.open(io.BytesIO(png)).convert("RGB").resize(SIZE, Image.LANCZOS)
    shot.quantize(256, method=Image.Quantize.FASTOCTREE).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB) from {html}")


if __name__ == "__main__":
    main()
