"""Dataset readers on small files written in the exact official formats; damaged and foreign files."""

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _official_files import (
    ids_of,
    idx_bytes,
    images_with_ids,
    md5,
    trust,
    write_cifar,
    write_idx_set,
    write_svhn,
)
from nin.data import load_dataset
from nin.data.unpickle import safe_unpickle
from nin.errors import DataError

FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test may see the user's data root (the system folder for Fashion-MNIST stays visible)."""
    monkeypatch.setenv("NIN_DATA_ROOT", str(tmp_path / "default-root"))


def _trust_cifar(monkeypatch, name, written, archive_bytes=None):
    files = dict(written["members"])
    if archive_bytes is not None:
        files[written["path"].name] = archive_bytes
    trust(monkeypatch, name, files)


# --- CIFAR ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("kind", ["python", "binary"])
@pytest.mark.parametrize("archive", [False, True], ids=["folder", "targz"])
def test_cifar_reads_official_formats(tmp_path, monkeypatch, name, kind, archive):
    root = tmp_path / "data"
    w = write_cifar(root / name, name, kind, per_batch=6, archive=archive)
    _trust_cifar(monkeypatch, name, w, w["path"].read_bytes() if archive else None)
    for split in ("train", "test"):
        ds = load_dataset(name, split, str(root))
        x, y = w[split]
        assert ds.images.dtype == torch.uint8 and ds.shape == (3, 32, 32)
        assert ds.name == f"{name}:{split}" and len(ds.classes) == (100 if name == "cifar100" else 10)
        np.testing.assert_array_equal(ds.images.numpy(), x)  # channel planes, rows and columns in place
        np.testing.assert_array_equal(ds.labels.numpy(), y)
    tr, va = load_dataset(name, "train40k", str(root)), load_dataset(name, "valid", str(root))
    assert (len(tr), len(va)) == (24, 6)
    assert set(ids_of(tr.images)) | set(ids_of(va.images)) == set(range(30))


def test_cifar10_classes_and_root_pointing_at_the_folder(tmp_path, monkeypatch):
    w = write_cifar(tmp_path, "cifar10", "python", per_batch=3)
    _trust_cifar(monkeypatch, "cifar10", w)
    ds = load_dataset("cifar10", "test", str(tmp_path / "cifar-10-batches-py"))
    assert ds.classes[0] == "airplane" and ds.classes[9] == "truck" and len(ds) == 3


def test_cifar_missing_says_what_to_do(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("cifar10", "train", str(tmp_path))
    msg = str(e.value)
    for part in (
        "nin data fetch cifar10",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
        str(tmp_path / "cifar10"),
    ):
        assert part in msg
    assert "\n" not in msg


def test_cifar_wrong_md5_and_truncated_archive(tmp_path, monkeypatch):
    w = write_cifar(tmp_path / "cifar10", "cifar10", "python", per_batch=3, archive=True)
    with pytest.raises(DataError, match=r"truncated or not the official file.*170,498,071"):
        load_dataset("cifar10", "train", str(tmp_path))  # smaller than the official archive
    good = w["path"].read_bytes()
    _trust_cifar(monkeypatch, "cifar10", w, good)
    w["path"].write_bytes(good[:-100])
    with pytest.raises(DataError, match="truncated"):
        load_dataset("cifar10", "train", str(tmp_path))
    w["path"].write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(DataError, match=r"has md5 [0-9a-f]{32}, not the official"):
        load_dataset("cifar10", "train", str(tmp_path))


def test_a_huge_wrong_archive_is_refused_without_being_loaded(tmp_path, monkeypatch):
    import nin.data.checksums

    written = write_cifar(tmp_path, "cifar10", "python", archive=True)
    _trust_cifar(monkeypatch, "cifar10", written, written["path"].read_bytes())
    monkeypatch.setattr(nin.data.checksums, "READ_ONCE_MAX_BYTES", written["path"].stat().st_size - 1)
    with open(written["path"], "ab") as f:
        f.write(bytes(4096))  # now bigger than any official file may be (here: the lowered cap)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self.name} read whole"))
    with pytest.raises(DataError, match=r"has md5 .* not the official"):
        load_dataset("cifar10", "test", str(tmp_path))


def test_cifar_python_batch_with_wrong_md5(tmp_path):
    w = write_cifar(tmp_path, "cifar10", "python", per_batch=3)  # official per-batch md5s stay in force
    with pytest.raises(DataError, match=r"data_batch_1 has md5 .* not the official c99cafc152244af753f735de768cd75f"):
        load_dataset("cifar10", "train", str(tmp_path))
    assert w["members"]


def test_pickle_carrying_code_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=4)
    with pytest.raises(DataError, match=r"asks to load (posix|nt)\.system.*refusing to unpickle"):
        safe_unpickle(evil, "data_batch_1")
    # the same through the reader, with the checksum made to match so only the unpickler stands in the way
    w = write_cifar(tmp_path / "d", "cifar10", "python", per_batch=2)
    (tmp_path / "d" / "cifar-10-batches-py" / "test_batch").write_bytes(evil)
    w["members"]["test_batch"] = evil
    _trust_cifar(monkeypatch, "cifar10", w)
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_dataset("cifar10", "test", str(tmp_path / "d"))
    assert not marker.exists()
    ok = safe_unpickle(pickle.dumps({"a": np.arange(3, dtype=np.uint8)}, protocol=5), "x")
    np.testing.assert_array_equal(ok["a"], [0, 1, 2])  # re-pickled arrays (numpy._core, protocol 5) load


@pytest.mark.parametrize(
    "payload,message",
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "not a valid pickle"),
        (pickle.dumps([1, 2, 3], protocol=4), "not the dict of a CIFAR batch"),
        (pickle.dumps({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]}, protocol=4), "not uint8 \\(N, 3072\\)"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, protocol=4), "1 labels for 2 images"),
        (b"\x80\x02}q\x00(U\x04dataq", "truncated"),
    ],
    ids=["png", "list", "wrong-shape", "label-count", "truncated"],
)
def test_foreign_python_batch(tmp_path, monkeypatch, payload, message):
    w = write_cifar(tmp_path, "cifar10", "python", per_batch=2)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(payload)
    w["members"]["test_batch"] = payload
    _trust_cifar(monkeypatch, "cifar10", w)
    with pytest.raises(DataError, match=message):
        load_dataset("cifar10", "test", str(tmp_path))


def test_cifar_binary_truncated_record_and_missing_member(tmp_path, monkeypatch):
    w = write_cifar(tmp_path, "cifar10", "binary", per_batch=3)
    _trust_cifar(monkeypatch, "cifar10", w)
    folder = tmp_path / "cifar-10-batches-bin"
    data = (folder / "test_batch.bin").read_bytes()
    (folder / "test_batch.bin").write_bytes(data[:-10])
    from nin.data.cifar import parse_binary_batch

    with pytest.raises(DataError, match="whole number of 3073-byte records"):
        parse_binary_batch(data[:-10], "test_batch.bin", 1, 10)
    with pytest.raises(DataError, match="label 200 >= 10"):
        parse_binary_batch(bytes([200]) + data[1:3073], "x.bin", 1, 10)
    (folder / "data_batch_3.bin").unlink()
    with pytest.raises(DataError, match=r"data_batch_3.bin is missing: the folder .* is incomplete"):
        load_dataset("cifar10", "train", str(tmp_path))


def test_cifar_binary_extracted_files_checked_by_size(tmp_path):
    """No md5s are published for the binary batches: an extracted one must have the official size."""
    write_cifar(tmp_path, "cifar10", "binary", per_batch=3)
    with pytest.raises(DataError, match=r"test_batch.bin is truncated \(9,219 of 30,730,000 bytes\)"):
        load_dataset("cifar10", "test", str(tmp_path))


# --- SVHN -------------------------------------------------------------------------------------------------
@pytest.fixture
def svhn_files(tmp_path, monkeypatch):
    pytest.importorskip("scipy")
    d = tmp_path / "svhn"
    d.mkdir()
    labels = {"train": np.arange(40) % 10, "test": np.arange(15) % 10, "extra": (np.arange(30) * 3) % 10}
    starts = {"train": 0, "test": 1000, "extra": 2000}
    x = {k: write_svhn(d / f"{k}_32x32.mat", v, starts[k]) for k, v in labels.items()}
    trust(monkeypatch, "svhn", {f"{k}_32x32.mat": d / f"{k}_32x32.mat" for k in labels})
    monkeypatch.setattr("nin.data.svhn.VALID_PER_CLASS", (2, 1))
    return tmp_path, labels, x


def test_svhn_reads_mat_and_maps_label_10_to_0(svhn_files):
    root, labels, x = svhn_files
    test = load_dataset("svhn", "test", str(root))
    np.testing.assert_array_equal(test.images.numpy(), x["test"])  # (32, 32, 3, N) -> (N, 3, 32, 32)
    np.testing.assert_array_equal(test.labels.numpy(), labels["test"])
    assert test.labels.min() == 0 and test.classes[0] == "0"
    only = load_dataset("svhn", "train_only", str(root))
    assert len(only) == 40


def test_svhn_maxout_validation_split(svhn_files):
    root, _, _ = svhn_files
    valid, train = load_dataset("svhn", "valid", str(root)), load_dataset("svhn", "train", str(root))
    assert len(valid) == 10 * 2 + 10 * 1 and len(train) == 40 + 30 - 30
    v_ids, t_ids = set(ids_of(valid.images)), set(ids_of(train.images))
    assert not v_ids & t_ids and v_ids | t_ids == set(range(40)) | set(range(2000, 2030))
    assert sum(i < 1000 for i in v_ids) == 20  # 2 per class from train, 1 per class from extra
    assert torch.bincount(valid.labels, minlength=10).tolist() == [3] * 10
    assert set(ids_of(load_dataset("svhn", "valid", str(root)).images)) == v_ids  # fixed, seeded


def test_svhn_damaged_files(svhn_files, monkeypatch):
    root, _, _ = svhn_files
    extra = root / "svhn" / "extra_32x32.mat"
    good = extra.read_bytes()
    extra.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="truncated"):
        load_dataset("svhn", "train", str(root))
    trust(monkeypatch, "svhn", {"extra_32x32.mat": extra})  # checksum matches: the MATLAB reader must object
    with pytest.raises(DataError, match=r"cannot be read as a MATLAB file|not an SVHN"):
        load_dataset("svhn", "train", str(root))
    extra.unlink()
    with pytest.raises(DataError, match=r"extra_32x32.mat missing.*nin data fetch svhn"):
        load_dataset("svhn", "train", str(root))
    assert len(load_dataset("svhn", "test", str(root))) == 15  # the test split does not need extra


def test_svhn_wrong_md5(tmp_path):
    pytest.importorskip("scipy")
    (tmp_path / "svhn").mkdir()
    write_svhn(tmp_path / "svhn" / "test_32x32.mat", np.arange(5) % 10)
    with pytest.raises(DataError, match=r"not the official eb5a983be6a315427106f1b164d9cef3|truncated"):
        load_dataset("svhn", "test", str(tmp_path))


# --- MNIST / Fashion-MNIST (IDX) ----------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_mnist_idx_gz_and_raw(tmp_path, monkeypatch, gz):
    files = write_idx_set(tmp_path / "mnist", gz=gz)
    trust(monkeypatch, "mnist", {k + ("" if gz else ".gz"): v for k, v in files.items() if "ubyte" in k})
    train, test = load_dataset("mnist", "train", str(tmp_path)), load_dataset("mnist", "test", str(tmp_path))
    assert train.shape == (1, 28, 28) and (len(train), len(test)) == (24, 12)
    np.testing.assert_array_equal(train.images[:, 0].numpy(), files["train"][0])
    np.testing.assert_array_equal(test.labels.numpy(), files["t10k"][1])
    assert (
        len(load_dataset("mnist", "train50k", str(tmp_path))),
        len(load_dataset("mnist", "valid", str(tmp_path))),
    ) == (20, 4)


def test_raw_mnist_without_published_md5_is_checked_by_structure(tmp_path):
    """No md5 of decompressed MNIST exists: a raw file passes on its IDX structure and official size."""
    write_idx_set(tmp_path / "mnist", gz=False)
    with pytest.raises(DataError, match=r"truncated or not the official file: 18,832 bytes.*47,040,016"):
        load_dataset("mnist", "train", str(tmp_path))


def test_mnist_damaged_and_foreign_idx(tmp_path, monkeypatch):
    files = write_idx_set(tmp_path / "mnist", gz=True)
    with pytest.raises(DataError, match=r"not the official f68b3c2dcbeaaa9fbdd348bbdeb94873|truncated"):
        load_dataset("mnist", "train", str(tmp_path))
    img = files["train-images-idx3-ubyte.gz"]
    good = img.read_bytes()
    trusted = {k: v.read_bytes() for k, v in files.items() if "ubyte" in k}
    # checksums trusted, content damaged: each reader check speaks for itself
    for payload, message in (
        (good[: len(good) // 2], "truncated"),
        (gzip.compress(idx_bytes(np.zeros((24, 28, 28), np.uint8))[:-5]), r"truncated \(18,827 of 18,832 bytes\)"),
        (gzip.compress(b"\x89PNG\r\n\x1a\n" + bytes(40)), "not an IDX file"),
        (gzip.compress(idx_bytes(np.zeros(24, np.uint8))), "swapped"),
        (gzip.compress(idx_bytes(np.zeros((23, 28, 28), np.uint8))), "23 images but .* 24 labels"),
    ):
        img.write_bytes(payload)
        trust(monkeypatch, "mnist", {**trusted, "train-images-idx3-ubyte.gz": payload})
        with pytest.raises(DataError, match=message):
            load_dataset("mnist", "train", str(tmp_path))


def test_fashion_recompressed_copy_passes_on_content_md5(tmp_path, monkeypatch):
    files = write_idx_set(tmp_path / "fashion_mnist", gz=True)
    trust(monkeypatch, "fashion_mnist", {k: v for k, v in files.items() if "ubyte" in k})
    img = files["train-images-idx3-ubyte.gz"]
    img.write_bytes(gzip.compress(gzip.decompress(img.read_bytes()), compresslevel=1, mtime=123))  # as Debian did
    ds = load_dataset("fashion_mnist", "train", str(tmp_path))
    assert len(ds) == 24 and ds.classes[0] == "T-shirt/top"
    img.write_bytes(gzip.compress(idx_bytes(np.ones((24, 28, 28), np.uint8)), mtime=0))  # other content
    with pytest.raises(DataError, match=r"has md5|truncated or not the official"):
        load_dataset("fashion_mnist", "train", str(tmp_path))


def test_idx_files_are_read_and_gunzipped_once(tmp_path, monkeypatch):
    """The md5 is taken of the bytes that are parsed: one read per file, one gunzip of a re-gzipped copy."""
    import nin.data.checksums

    files = write_idx_set(tmp_path / "fashion_mnist", gz=True)
    trust(monkeypatch, "fashion_mnist", {k: v for k, v in files.items() if "ubyte" in k})
    img = files["train-images-idx3-ubyte.gz"]
    img.write_bytes(gzip.compress(gzip.decompress(img.read_bytes()), compresslevel=1, mtime=123))
    reads, gunzips = [], []
    real_read, real_gunzip = Path.read_bytes, gzip.decompress
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self.name) or real_read(self))
    monkeypatch.setattr(gzip, "decompress", lambda data: gunzips.append(len(data)) or real_gunzip(data))
    monkeypatch.setattr(nin.data.checksums, "md5_file", lambda *a, **k: pytest.fail("file hashed from disk again"))
    ds = load_dataset("fashion_mnist", "train", str(tmp_path))
    assert len(ds) == 24
    assert sorted(reads) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert len(gunzips) == 2  # the re-gzipped images once (md5 of content, then parsed), the labels once


@pytest.mark.skipif(
    not FASHION_DEBIAN.is_dir(), reason=f"{FASHION_DEBIAN} absent (apt-get install dataset-fashion-mnist)"
)
def test_real_fashion_mnist_from_debian(tmp_path):
    test = load_dataset("fashion_mnist", "test", str(tmp_path))  # an empty root: found in the system folder
    assert len(test) == 10_000 and test.shape == (1, 28, 28)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert test.meta["source"] == str(FASHION_DEBIAN)
    train = load_dataset("fashion_mnist", "train", None)
    assert len(train) == 60_000 and torch.bincount(train.labels).tolist() == [6000] * 10
    assert 60 < train.images.float().mean() < 90  # real clothing images (mean pixel ~72.9)


# --- image folders ------------------------------------------------------------------------------------------
def _write_images(folder: Path, n: int, color, fmt: str = "PNG", size=(20, 12)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, color).save(folder / f"{i}.{fmt.lower()}", fmt)


def test_image_folder_flat_layout_is_split_per_class(tmp_path):
    _write_images(tmp_path / "cats", 10, (255, 0, 0))
    _write_images(tmp_path / "dogs", 5, (0, 0, 255), "JPEG")
    (tmp_path / "dogs" / "notes.txt").write_text("ignored")
    train, test = (
        load_dataset("imagefolder", "train", str(tmp_path)),
        load_dataset("imagefolder", "test", str(tmp_path)),
    )
    assert train.classes == ("cats", "dogs") and train.shape == (3, 32, 32)
    assert (len(train), len(test)) == (12, 3) and test.labels.tolist() == [0, 0, 1]
    assert train.images[train.labels == 0][:, 0].float().mean() > 250  # red, resized to 32x32
    gray = load_dataset("imagefolder_gray", "all", str(tmp_path))
    assert gray.shape == (1, 28, 28) and len(gray) == 15


def test_image_folder_applies_exif_orientation_as_prediction_does(tmp_path):
    """A phone photo stored sideways with an EXIF rotation is trained on the way it is shown and predicted."""
    from nin.data.images import open_image, pil_to_tensor

    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))  # red left half, blue right half as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": shown upright, red on top
    (tmp_path / "photos").mkdir()
    stored.save(tmp_path / "photos" / "sideways.jpg", "JPEG", exif=exif, quality=95)
    _write_images(tmp_path / "other", 1, (0, 255, 0))
    ds = load_dataset("imagefolder", "all", str(tmp_path))
    img = ds.images[ds.labels == ds.classes.index("photos")][0]
    expected = pil_to_tensor(open_image(tmp_path / "photos" / "sideways.jpg"), 3, (32, 32))
    assert torch.equal(img, expected)
    red = img[0].float()
    assert red[:8].mean() > 200 and red[-8:].mean() < 50  # red on top: the rotation was applied


def test_image_folder_takes_panoramas_and_other_formats_that_serving_caps(tmp_path):
    """The upload caps (12,000 px a side) do not apply to the user's own training images."""
    _write_images(tmp_path / "wide", 1, (255, 0, 0), size=(12_500, 8))
    _write_images(tmp_path / "webp", 1, (0, 0, 255), fmt="WEBP")
    ds = load_dataset("imagefolder", "all", str(tmp_path))
    assert ds.classes == ("webp", "wide") and ds.images[1, 0].float().mean() > 250


def test_image_folder_train_test_layout_and_errors(tmp_path):
    _write_images(tmp_path / "train" / "a", 2, (10, 10, 10))
    _write_images(tmp_path / "train" / "b", 2, (200, 200, 200))
    _write_images(tmp_path / "test" / "b", 1, (200, 200, 200))
    test = load_dataset("imagefolder", "test", str(tmp_path))
    assert test.classes == ("a", "b") and test.labels.tolist() == [1]
    _write_images(tmp_path / "test" / "c", 1, (0, 0, 0))
    with pytest.raises(DataError, match=r"classes \['c'\] that .*train lacks"):
        load_dataset("imagefolder", "test", str(tmp_path))
    good = (tmp_path / "train" / "a" / "0.png").read_bytes()
    (tmp_path / "train" / "a" / "0.png").write_bytes(b"not really a png")
    with pytest.raises(DataError, match=r"0.png is not an image of an accepted type .*; remove or replace it$"):
        load_dataset("imagefolder", "train", str(tmp_path))
    (tmp_path / "train" / "a" / "0.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=r"0.png could not be decoded: .*; remove or replace it$"):
        load_dataset("imagefolder", "train", str(tmp_path))
    (tmp_path / "train" / "a" / "0.png").write_bytes(good)
    with pytest.raises(DataError, match="data_root=DIR"):
        load_dataset("imagefolder", "train", None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset("imagefolder", "train", str(tmp_path / "empty"))


def test_images_with_ids_helper_is_unique():
    assert len(set(ids_of(images_with_ids(600)))) == 600
    assert md5(b"") == "d41d8cd98f00b204e9800998ecf8427e"


def test_image_folder_info_reads_the_layout_the_loader_reads(tmp_path):
    """Only train/ (no test/) is not the given-splits layout: the loader reads DIR's sub-folders as classes,
    finds none holding images, and the info says so instead of calling the folder ready."""
    from nin.data.imagefolder import inspect_image_folder

    _write_images(tmp_path / "train" / "cats", 3, (255, 0, 0))
    _write_images(tmp_path / "train" / "dogs", 3, (0, 0, 255))
    info = inspect_image_folder(tmp_path)
    assert info["classes"] == {"all": {}} and not info["ready"]
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset("imagefolder", "train", str(tmp_path))
    _write_images(tmp_path / "test" / "cats", 2, (255, 0, 0))
    info = inspect_image_folder(tmp_path)
    assert info["classes"] == {"train": {"cats": 3, "dogs": 3}, "test": {"cats": 2}} and info["ready"]
