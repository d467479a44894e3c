"""The fast batch path: the short decode road gives prepare_one's pixels and errors, every pool and schedule gives
the rows of a chunk-by-chunk reference, reused buffers carry nothing from one batch to the next, JPEG draft stays
within its documented tolerance."""

import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from _predict import write_broken, write_digits
from fixtures.serve.builders import bomb_png, digit, make_ckpt
from nin.bench.predict_folders import photo
from nin.data.preprocess import build_preprocessor
from nin.data.preprocess_base import Preprocessor
from nin.predict import expand_inputs, predict_paths
from nin.predict.decode import Chunk, decoded_chunks
from nin.predict.engine import host_side
from nin.predict.pixels import decode_into, describe_failure, draft_size
from nin.predict.pool import ProcessPool
from nin.predict.rows import PredictionRow
from nin.serve.predictor import ModelInfo, Predictor


@pytest.fixture(scope="module")
def grey():
    return Predictor.from_checkpoint_dict(make_ckpt(), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def colour():
    ckpt = make_ckpt(model="nin_cifar10", shape=(3, 32, 32))
    return Predictor.from_checkpoint_dict(ckpt, device="cpu", precision="fp32")


def _host(preprocessor, shape=(3, 224, 224)):
    info = ModelInfo("x", ["a", "b"], dict(zip(("channels", "height", "width"), shape)), "", "", "pytorch", "")
    return Predictor(None, preprocessor, info)


def _rgb(w, h, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.BICUBIC)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Files of every mode the decoders meet; ``fast`` lists those the short road must take itself."""
    root = tmp_path_factory.mktemp("zoo")
    files, fast = [], set()

    def save(name, img, fmt, quick, **opts):
        path = root / name
        img.save(path, format=fmt, **opts)
        files.append(str(path))
        if quick:
            fast.add(str(path))

    save("grey.png", Image.fromarray(digit(3)), "PNG", True)
    save("rgb.jpg", _rgb(50, 40), "JPEG", True, quality=90)
    save("grey.jpg", _rgb(40, 50).convert("L"), "JPEG", True)
    save("rgba.png", _rgb(30, 30).convert("RGBA"), "PNG", True)
    save("palette.png", _rgb(33, 20).convert("P"), "PNG", True, transparency=0)
    save("cmyk.jpg", _rgb(36, 36).convert("CMYK"), "JPEG", True)
    save("deep.png", Image.fromarray(np.arange(24 * 24, dtype=np.uint16).reshape(24, 24) * 100), "PNG", True)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the image is shown turned by 90 degrees
    save("rotated.jpg", _rgb(48, 30), "JPEG", True, exif=exif.tobytes())
    save("rotated.png", _rgb(48, 30), "PNG", True, exif=exif.tobytes())  # an eXIf chunk: still turned
    save("anim.gif", _rgb(20, 20).convert("P"), "GIF", False, save_all=True, append_images=[_rgb(20, 20, 1)])
    save("plain.bmp", _rgb(20, 28), "BMP", False)
    save("plain.webp", _rgb(20, 28), "WEBP", False, lossless=True)
    save("plain.tif", _rgb(20, 28), "TIFF", False)
    return files, fast


HOSTS = {
    "base grey": lambda g, c: g,
    "base colour": lambda g, c: c,
    "imagenet caffe": lambda g, c: _host(build_preprocessor("imagenet")),
    "imagenet shorter side, lanczos": lambda g, c: _host(
        build_preprocessor("imagenet", resize="shorter_crop", resize_size=40, resample="lanczos"), (3, 32, 32)
    ),
}


@pytest.mark.parametrize("which", list(HOSTS))
def test_the_short_road_gives_the_pixels_of_prepare_one_and_takes_png_and_jpeg_itself(which, grey, colour, zoo):
    files, fast = zoo
    host = HOSTS[which](grey, colour)
    slow = []
    real = host.prepare_one
    wrapped = Predictor(None, host.preprocessor, host.info)  # a copy whose prepare_one is watched
    wrapped.prepare_one = lambda path: (slow.append(path), real(path))[1]
    for path in files:
        slot = torch.zeros(host.input_shape, dtype=torch.uint8)
        assert decode_into(wrapped, path, slot) == "", path
        assert torch.equal(slot, real(path)), path
    assert set(slow) == set(files) - fast  # PNG and JPEG never went through prepare_one


def test_error_rows_carry_the_words_of_prepare_one(grey, tmp_path):
    broken = write_broken(tmp_path)
    big = tmp_path / "bomb.png"
    big.write_bytes(bomb_png(20_000, 20_000))
    paths = [*map(str, broken), str(big), str(tmp_path / "missing.png"), str(tmp_path)]
    for path in paths:
        with pytest.raises(Exception) as info:
            grey.prepare_one(path)
        slot = torch.zeros(grey.input_shape, dtype=torch.uint8)
        assert decode_into(grey, path, slot) == describe_failure(path, info.value), path


def test_a_lowered_pillow_pixel_limit_is_kept_with_pillows_words(grey, tmp_path, monkeypatch):
    path = tmp_path / "d.png"
    Image.fromarray(digit(1)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)  # a program that lowered it: 784 pixels are too many
    with pytest.raises(Exception) as info:
        grey.prepare_one(str(path))
    assert "exceeds limit" in str(info.value)
    assert decode_into(grey, str(path), torch.zeros(1, 28, 28, dtype=torch.uint8)) == str(info.value)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("speed")
    write_digits(root / "digits", 26, mixed=True)
    write_broken(root / "digits" / "class1")
    return [*expand_inputs([str(root / "digits")]), str(root / "missing.png")]


def _reference(predictor, paths, batch, top_k=5):
    """Rows computed the plain way: each chunk's files through prepare_one, stacked, one run."""
    rows = []
    for c in range(0, len(paths), batch):
        part = paths[c : c + batch]
        good, pixels, errors = [], [], {}
        for i, path in enumerate(part, start=c):
            try:
                pixels.append(predictor.prepare_one(path))
                good.append(i)
            except Exception as exc:
                errors[i] = describe_failure(path, exc)
        preds = predictor.top_k(torch.softmax(predictor.run(torch.stack(pixels))[0], dim=1), top_k) if pixels else []
        by_index = dict(zip(good, preds))
        for i, path in enumerate(part, start=c):
            rows.append(PredictionRow(i, path, None, errors[i]) if i in errors else PredictionRow(i, path, by_index[i]))
    return rows


SCHEDULES = [
    {"workers": 0},
    {"workers": 1, "pool": "processes"},
    {"workers": 2, "pool": "threads"},
    {"workers": 1, "pool": "processes", "overlap": True},
    {"workers": 2, "pool": "threads", "overlap": True},
]


@pytest.mark.parametrize("options", SCHEDULES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_every_pool_and_schedule_gives_the_rows_of_the_plain_reference_exactly(grey, folder, options):
    want = _reference(grey, folder, 8)
    got = list(predict_paths(grey, folder, batch_size=8, **options))
    assert got == want  # same pixels, same batches: the same numbers to the last bit, errors in place
    assert sum(bool(r.error) for r in got) == 3


@pytest.mark.parametrize("options", SCHEDULES[:4], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_reused_buffers_hold_only_their_own_batch(grey, tmp_path, options):
    good = [str(p) for p in write_digits(tmp_path / "d", 6, nested=False)]
    bad = [str(p) for p in write_broken(tmp_path / "bad")]
    stream = [
        Chunk(0, [0, 1, 2, 3], good[:4]),
        Chunk(1, [4, 5, 6, 7], [bad[0], good[4], bad[1], good[5]]),  # holes where chunk 0's pixels still lie
        Chunk(2, [8], [good[0]]),  # a short last chunk
        Chunk(3, [12, 13], bad),  # nothing decodes
    ]
    kw = {k: v for k, v in options.items() if k != "workers"}
    seen = []
    for decoded in decoded_chunks(host_side(grey), iter(stream), options["workers"], batch_size=4, **kw):
        ok = [p for p, e in zip(decoded.paths, decoded.errors) if not e]
        want = torch.stack([grey.prepare_one(p) for p in ok]) if ok else torch.empty(0, 1, 28, 28, dtype=torch.uint8)
        assert torch.equal(decoded.pixels, want), decoded.number
        seen.append((decoded.number, len(ok)))
    assert seen == [(0, 4), (1, 2), (2, 1), (3, 0)]


def test_jpeg_draft_stays_within_its_documented_tolerance(tmp_path):
    """docs/batch-predict.md: draft only for JPEGs at least twice the recipe's resize; mean change < 3 of 255."""
    host = _host(build_preprocessor("imagenet"))  # Caffe: warp to 256x256, centre crop 224
    size = draft_size(host.preprocessor, host.input_shape)
    assert size == (256, 256)
    large, small, png = tmp_path / "large.jpg", tmp_path / "small.jpg", tmp_path / "large.png"
    photo(0, (1024, 768)).save(large, quality=90)
    photo(1, (500, 375)).save(small, quality=90)
    photo(2, (1024, 768)).save(png)
    exact, drafted = (torch.zeros(3, 224, 224, dtype=torch.uint8) for _ in range(2))
    for path, changes in ((large, True), (small, False), (png, False)):
        assert decode_into(host, str(path), exact) == "" and decode_into(host, str(path), drafted, size) == ""
        diff = (exact.float() - drafted.float()).abs()
        assert bool(diff.max() > 0) == changes, path
        assert float(diff.mean()) < 3.0, path
    assert torch.equal(exact, host.prepare_one(str(png)))


def test_draft_is_left_alone_for_a_recipe_of_unknown_geometry():
    class Padded(Preprocessor):
        name = "padded"

        def prepare_image(self, image, channels, size):  # pragma: no cover - only its presence matters
            raise NotImplementedError

    assert draft_size(Padded(), (3, 32, 32)) is None
    assert draft_size(build_preprocessor("imagenet", preset="modelhub"), (3, 224, 224)) == (224, 224)
    assert draft_size(build_preprocessor("scale"), (1, 28, 30)) == (30, 28)


def test_a_decoding_process_that_dies_ends_the_run_with_an_error(grey):
    ring = [torch.zeros(4, 1, 28, 28, dtype=torch.uint8).share_memory_()]
    pool = ProcessPool(1, host_side(grey), ring, None)
    try:
        os.kill(pool._procs[0].pid, signal.SIGKILL)
        pool._procs[0].join(timeout=10)
        pool.submit(0, 0, ["x.png"])
        with pytest.raises(RuntimeError, match="ended"):
            pool.result()
    finally:
        pool.close()


def test_nin_predict_gives_the_same_file_with_threads_and_with_jpeg_draft_on_small_files(tmp_path, capsys):
    from fixtures.serve.builders import save_ckpt
    from nin.cli import main

    ckpt = str(save_ckpt(tmp_path / "m.pt"))
    root = tmp_path / "imgs"
    write_digits(root, 20, mixed=True)  # JPEGs among them, all far under twice 28x28: draft leaves them alone
    write_broken(root / "class0")
    outs = {}
    for name, extra in {
        "main": ["--workers", "0"],
        "processes": ["--workers", "2", "--decode", "processes"],
        "threads": ["--workers", "2", "--decode", "threads"],
        "auto": ["--workers", "2"],
        "draft": ["--workers", "1", "--jpeg-draft"],
    }.items():
        outs[name] = tmp_path / f"{name}.csv"
        assert main(["predict", ckpt, str(root), "--out", str(outs[name]), "--batch-size", "8", *extra]) == 1
    want = outs["main"].read_bytes()
    assert all(p.read_bytes() == want for p in outs.values())
    assert want.count(b"\n") == 23  # header, 20 rows, 2 error rows
    with pytest.raises(SystemExit) as info:
        main(["predict", ckpt, str(root), "--decode", "fibres"])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_on_a_cpu_no_part_file_is_written_while_the_model_runs(grey, tmp_path, monkeypatch):
    import threading
    import time

    from nin.predict import parts, predict_to_file

    paths = [str(p) for p in write_digits(tmp_path / "d", 20, nested=False)]
    spans: dict[str, list[tuple[float, float]]] = {"run": [], "write": []}
    lock = threading.Lock()

    def timed(kind, fn, pause=0.0):
        def call(*args, **kwargs):
            t0 = time.perf_counter()
            time.sleep(pause)  # a slow disk: the write would still be going when the next forward starts
            out = fn(*args, **kwargs)
            with lock:
                spans[kind].append((t0, time.perf_counter()))
            return out

        return call

    monkeypatch.setattr(grey, "run", timed("run", grey.run))
    monkeypatch.setattr(parts, "write_part", timed("write", parts.write_part, pause=0.03))
    out = tmp_path / "preds.csv"
    summary = predict_to_file(grey, paths, out, batch_size=4, workers=1)
    assert summary.rows == 20 and len(spans["run"]) == 5 and len(spans["write"]) == 5
    for r0, r1 in spans["run"]:
        for w0, w1 in spans["write"]:
            assert r1 <= w0 or w1 <= r0, "a part was being written during a forward pass"
    assert len(out.read_text().splitlines()) == 21


def test_off_a_cpu_the_part_write_overlaps_the_model():
    from concurrent.futures import Future

    from nin.predict.runner import _PartGate

    for hold, waits in ((True, True), (False, False)):
        gate, fut = _PartGate(hold_model=hold), Future()
        fut.set_exception(OSError("disk full"))
        gate.pending = fut
        if waits:
            with pytest.raises(OSError):
                gate.before_forward()
        else:
            gate.before_forward()  # a GPU's forward does not wait for the disk
            with pytest.raises(OSError):
                gate.wait()  # the next write does


def test_the_default_chunk_is_large_for_small_inputs_and_changes_no_number(grey, folder):
    from nin.predict.engine import default_batch_size

    assert default_batch_size((1, 28, 28)) == 512 and default_batch_size((3, 32, 32)) == 512
    assert default_batch_size((3, 224, 224)) == 64 and default_batch_size((3, 64, 64)) == 170
    got = list(predict_paths(grey, folder, workers=1))  # one chunk of 512 where the reference cuts 8s
    assert got == _reference(grey, folder, 8)


def test_auto_decodes_small_inputs_in_processes_and_photos_in_threads(grey, folder):
    from nin.errors import ConfigError
    from nin.predict.decode import default_pool

    assert default_pool((1, 28, 28)) == default_pool((3, 32, 32)) == "processes"
    assert default_pool((3, 96, 96)) == default_pool((3, 224, 224)) == "threads"
    assert list(predict_paths(grey, folder, workers=1, pool="auto")) == _reference(grey, folder, 64)
    with pytest.raises(ConfigError, match="one of auto, processes, threads"):
        list(predict_paths(grey, folder, pool="fibres"))
