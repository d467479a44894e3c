"""Where each dataset comes from: official file names, URLs, md5s and sizes, and the class names.

The md5s are those the publishers give (CIFAR: https://www.cs.toronto.edu/~kriz/cifar.html; SVHN:
http://ufldl.stanford.edu/housenumbers/; MNIST: http://yann.lecun.com/exdb/mnist/; Fashion-MNIST:
https://github.com/zalandoresearch/fashion-mnist); docs/reproduction.md ("Getting the data") says how to get
the files. Where nin looks for them on disk is :mod:`nin.data.paths`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nin.errors import DataError


@dataclass(frozen=True)
class FileSpec:
    """One file as its publisher distributes it.

    Attributes:
        name: file name as published.
        md5: md5 of the published bytes (``None`` where none is published: then the reader checks structure).
        size: bytes of the published file (used for messages and download progress only).
        urls: official download URLs, best first.
        raw_md5: md5 of the decompressed content of a ``.gz`` file: a re-compressed copy (Debian's) or the
            decompressed file itself passes when its content matches.
        raw_size: bytes of the decompressed content.
    """

    name: str
    md5: str | None = None
    size: int | None = None
    urls: tuple[str, ...] = ()
    raw_md5: str | None = None
    raw_size: int | None = None

    @property
    def raw_name(self) -> str | None:
        """The name of the decompressed file (``train-images-idx3-ubyte``) for ``.gz`` files."""
        return self.name[:-3] if self.name.endswith(".gz") else None


@dataclass(frozen=True)
class ArchiveSpec:
    """A ``.tar.gz`` that unpacks to ``folder``; readers take its ``members`` from the archive or the folder."""

    file: FileSpec
    folder: str
    kind: str  # reader format: "python" (pickled batches) | "binary" (fixed-size records)
    members: tuple[FileSpec, ...] = ()

    def member(self, name: str) -> FileSpec:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)


@dataclass(frozen=True)
class Source:
    """Everything nin knows about the files of one dataset."""

    name: str  # dataset name, also the folder under the data root
    title: str
    files: tuple[FileSpec, ...] = ()  # plain files (SVHN, MNIST)
    archives: tuple[ArchiveSpec, ...] = ()  # alternative archives (CIFAR), in order of preference
    split_files: dict[str, tuple[str, ...]] = field(default_factory=dict)  # split -> file/member names
    system_dirs: tuple[str, ...] = ()  # folders a system package installs the files into
    note: str = ""

    def file(self, name: str) -> FileSpec:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(name)

    def fetch_files(self, variant: str | None = None) -> tuple[FileSpec, ...]:
        """The files ``nin data fetch`` downloads: the plain files, or one archive (``variant``: python|binary)."""
        if not self.archives:
            return self.files
        for a in self.archives:
            if variant in (None, a.kind):
                return (a.file,)
        raise DataError(f"{self.name} has no variant {variant!r}; valid: {', '.join(a.kind for a in self.archives)}")


_KRIZ = "https://www.cs.toronto.edu/~kriz/"
_UFLDL = "http://ufldl.stanford.edu/housenumbers/"
_MNIST = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# The fine label names of CIFAR-100's `meta` file, in label order (alphabetical).
_CIFAR100_NAMES = """
    apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can
    castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin
    elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster
    man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck
    pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk
    skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger
    tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"""
CIFAR100_CLASSES = tuple(_CIFAR100_NAMES.split())
DIGITS = tuple(str(d) for d in range(10))
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def _kriz(name: str, md5: str, size: int) -> FileSpec:
    return FileSpec(name, md5, size, (_KRIZ + name,))


_C10_PY = ArchiveSpec(
    _kriz("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", 170_498_071),
    "cifar-10-batches-py",
    "python",
    (
        FileSpec("data_batch_1", "c99cafc152244af753f735de768cd75f"),
        FileSpec("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
        FileSpec("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
        FileSpec("data_batch_4", "634d18415352ddfa80567beed471001a"),
        FileSpec("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
        FileSpec("test_batch", "40351d587109b95175f43aff81a1287e"),
    ),
)
# No per-file md5s are published for the binary batches: the archive md5 covers them, and the reader
# checks the exact size (10,000 records of 3,073 bytes) of an extracted file.
_C10_BIN = ArchiveSpec(
    _kriz("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", 170_052_171),
    "cifar-10-batches-bin",
    "binary",
    (
        *(FileSpec(f"data_batch_{i}.bin", size=30_730_000) for i in range(1, 6)),
        FileSpec("test_batch.bin", size=30_730_000),
    ),
)
_C100_PY = ArchiveSpec(
    _kriz("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", 169_001_437),
    "cifar-100-python",
    "python",
    (FileSpec("train", "16019d7e3df5f24257cddd939b257f8d"), FileSpec("test", "f0ef6b0ae62326f3e7ffdfab6717acfc")),
)
_C100_BIN = ArchiveSpec(
    _kriz("cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8", 168_513_733),
    "cifar-100-binary",
    "binary",
    (FileSpec("train.bin", size=153_700_000), FileSpec("test.bin", size=30_740_000)),
)


def _idx(name: str, md5: str, size: int, raw_md5: str | None, raw_size: int, bases: tuple[str, ...]) -> FileSpec:
    return FileSpec(name, md5, size, tuple(b + name for b in bases), raw_md5, raw_size)


_IMG_TRAIN, _LAB_TRAIN = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
_IMG_TEST, _LAB_TEST = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
_IDX_SPLITS = {
    "train": (_IMG_TRAIN, _LAB_TRAIN),
    "test": (_IMG_TEST, _LAB_TEST),
    "train50k": (_IMG_TRAIN, _LAB_TRAIN),
    "valid": (_IMG_TRAIN, _LAB_TRAIN),
}

SOURCES: dict[str, Source] = {
    "cifar10": Source(
        "cifar10",
        "CIFAR-10",
        archives=(_C10_PY, _C10_BIN),
        split_files={
            "train": ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"),
            "train40k": ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4"),
            "valid": ("data_batch_5",),
            "test": ("test_batch",),
        },
        note="the .tar.gz as downloaded, or the folder it unpacks to",
    ),
    "cifar100": Source(
        "cifar100",
        "CIFAR-100",
        archives=(_C100_PY, _C100_BIN),
        split_files={"train": ("train",), "train40k": ("train",), "valid": ("train",), "test": ("test",)},
        note="the .tar.gz as downloaded, or the folder it unpacks to",
    ),
    "svhn": Source(
        "svhn",
        "SVHN (cropped digits, format 2)",
        files=(
            FileSpec("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373", 182_040_794, (_UFLDL + "train_32x32.mat",)),
            FileSpec("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3", 64_275_384, (_UFLDL + "test_32x32.mat",)),
            FileSpec(
                "extra_32x32.mat", "a93ce644f1a588dc4d68dda5feec44a7", 1_329_278_602, (_UFLDL + "extra_32x32.mat",)
            ),
        ),
        split_files={
            "train": ("train_32x32.mat", "extra_32x32.mat"),
            "valid": ("train_32x32.mat", "extra_32x32.mat"),
            "test": ("test_32x32.mat",),
            "train_only": ("train_32x32.mat",),
        },
    ),
    "mnist": Source(
        "mnist",
        "MNIST",
        files=(
            # No md5 of the decompressed MNIST files is published: a raw file is checked by its IDX structure.
            _idx(_IMG_TRAIN, "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422, None, 47_040_016, _MNIST),
            _idx(_LAB_TRAIN, "d53e105ee54ea40749a09fcbcd1e9432", 28_881, None, 60_008, _MNIST),
            _idx(_IMG_TEST, "9fb629c4189551a2d022fa330f9573f3", 1_648_877, None, 7_840_016, _MNIST),
            _idx(_LAB_TEST, "ec29112dd5afa0611ce80d1b7f02629c", 4_542, None, 10_008, _MNIST),
        ),
        split_files=_IDX_SPLITS,
        note="gzipped (as downloaded) or decompressed",
    ),
    "fashion_mnist": Source(
        "fashion_mnist",
        "Fashion-MNIST",
        files=(
            _idx(
                _IMG_TRAIN,
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                26_421_880,
                "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                47_040_016,
                _FASHION,
            ),
            _idx(
                _LAB_TRAIN,
                "25c81989df183df01b3e8a0aad5dffbe",
                29_515,
                "9018921c3c673c538a1fc5bad174d6f9",
                60_008,
                _FASHION,
            ),
            _idx(
                _IMG_TEST,
                "bef4ecab320f06d8554ea6380940ec79",
                4_422_102,
                "8181f5470baa50b63fa0f6fddb340f0a",
                7_840_016,
                _FASHION,
            ),
            _idx(
                _LAB_TEST,
                "bb300cfdad3c16e7a12a480ee83cd310",
                5_148,
                "15d484375f8d13e6eb1aabb0c3f46965",
                10_008,
                _FASHION,
            ),
        ),
        split_files={"train": (_IMG_TRAIN, _LAB_TRAIN), "test": (_IMG_TEST, _LAB_TEST)},
        # Debian's package dataset-fashion-mnist installs the four (re-gzipped) files here.
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        note="gzipped (as downloaded) or decompressed",
    ),
}


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise DataError(f"no download source for dataset {name!r}; datasets with files: {', '.join(sorted(SOURCES))}")
    return SOURCES[name]
