"""The web page in a real headless Chromium (Debian's package, driven by Playwright; no browser download).

Skipped only where no Chromium binary exists; CI installs it (.ci/run). NIN_SCREENSHOT_DIR=DIR keeps the
screenshots.
"""

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from fixtures.serve.builders import digit, png_bytes, save_ckpt
from nin.serve.app import create_app
from nin.serve.predictor import Predictor
from nin.serve.process import free_port
from nin.serve.settings import ServeSettings

CHROMIUM = next(
    (
        p
        for p in (os.environ.get("NIN_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"))
        if p and Path(p).exists()
    ),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium binary (apt-get install chromium, or set NIN_CHROMIUM=/path/to/chromium)"
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    ckpt = save_ckpt(tmp_path_factory.mktemp("browser") / "model.pt", dataset="mnist_embedded")
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    app = create_app(ServeSettings(checkpoint=str(ckpt)), predictor=predictor)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}/", predictor
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _shot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("NIN_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def test_upload_shows_top5_bars_and_class_map(server, browser, tmp_path):
    url, predictor = server
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    problems = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    local = (url, "blob:" + url.rstrip("/"), "data:")
    page.on("request", lambda r: None if r.url.startswith(local) else problems.append(f"off-site request {r.url}"))
    page.goto(url)
    page.wait_for_function("document.getElementById('model-line').textContent.includes('nin-mnist')")
    page.wait_for_selector("#samples button img")
    assert page.locator("#samples button").count() == 10

    image = tmp_path / "digit.png"
    image.write_bytes(png_bytes(digit(7)))
    page.set_input_files("#file", str(image))
    page.wait_for_selector("body[data-state='done']", timeout=30_000)

    want = predictor.predict(image, top_k=5)
    labels = page.locator("#bars .label").all_inner_texts()
    assert labels == want.labels
    widths = page.eval_on_selector_all("#bars .fill", "els => els.map(e => parseFloat(e.style.width))")
    assert len(widths) == 5 and widths == sorted(widths, reverse=True) and widths[0] > 0
    assert f"“{want.label}”" in page.inner_text("#status")
    page.wait_for_function("document.getElementById('map').complete && document.getElementById('map').naturalWidth > 0")
    assert page.is_visible("#map-figure")
    assert page.eval_on_selector("#map", "img => img.naturalWidth") == 252
    assert f"“{want.label}”" in page.inner_text("#map-caption")
    assert page.eval_on_selector("#preview", "img => img.naturalWidth") == 28
    _shot(page, tmp_path, "upload")
    assert problems == []


def test_sample_click_and_error_message(server, browser, tmp_path):
    url, predictor = server
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    page.goto(url)
    page.wait_for_selector("#samples button img")
    page.click("button[data-sample='digit-3.png']")
    page.wait_for_selector("body[data-state='done']", timeout=30_000)
    import io

    from PIL import Image

    sample = Image.open(io.BytesIO(__import__("httpx").get(url + "api/samples/digit-3.png").content))
    assert page.locator("#bars .label").first.inner_text() == predictor.predict(sample).label

    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("body[data-state='error']", timeout=30_000)
    assert "Incorrect file type" in page.inner_text("#status")
    assert page.locator("#bars li").count() == 0 and not page.is_visible("#map-figure")
    _shot(page, tmp_path, "error")
