"""What `nin predict` reads: nested folders in sorted order, image suffixes only, symlink loops, @LIST streams."""

import io
import os
import threading

import pytest

from _predict import sorted_walk, write_broken, write_digits
from nin.errors import ConfigError
from nin.predict.decode import chunks
from nin.predict.inputs import check_inputs, expand_inputs, read_list, walk_folder


def test_nested_folder_walk_is_sorted_recursive_and_keeps_image_files_only(tmp_path):
    write_digits(tmp_path / "data", 30, mixed=True)
    write_broken(tmp_path / "data" / "zz")
    (tmp_path / "data" / "README.txt").write_text("a text file is not picked")
    (tmp_path / "data" / "class1" / "labels.csv").write_text("x")
    (tmp_path / "data" / "empty").mkdir()
    got = list(walk_folder(tmp_path / "data"))
    assert got == sorted_walk(tmp_path / "data")
    assert len(got) == 32  # 30 digits (7 formats, upper-case suffixes too) + the two broken files, no .txt/.csv
    assert {os.path.splitext(p)[1] for p in got} >= {".png", ".JPG", ".jpeg", ".bmp", ".gif", ".tif", ".webp"}
    assert list(walk_folder(tmp_path / "data")) == got  # the same order every time


def test_symlink_loops_and_duplicate_links_do_not_repeat_or_hang(tmp_path):
    root = tmp_path / "root"
    write_digits(root / "a", 3, nested=False)
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)  # a -> root -> a -> ...
    (root / "b").symlink_to(root / "a", target_is_directory=True)  # a second way into a
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    got = list(walk_folder(root))
    assert len(got) == 3 and len(set(got)) == 3
    assert all("/a/" in p for p in got)


def test_list_file_streams_paths_and_mixes_with_files_and_folders(tmp_path):
    imgs = write_digits(tmp_path / "imgs", 6, nested=False)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{imgs[4]}\n\n  {imgs[5]}  \r\n{tmp_path / 'missing.png'}\n")
    got = list(expand_inputs([str(imgs[0]), f"@{listing}", str(tmp_path / "imgs")]))
    assert got == [str(imgs[0]), str(imgs[4]), str(imgs[5]), str(tmp_path / "missing.png"), *map(str, imgs)]


def test_list_is_read_as_a_stream_not_all_at_once(tmp_path):
    """A list on a pipe: the first path comes out while the writer has not finished (or closed) the list."""
    fifo = tmp_path / "paths.fifo"
    os.mkfifo(fifo)
    got, first_seen = [], threading.Event()

    def consume():
        for p in read_list(f"@{fifo}"):
            got.append(p)
            first_seen.set()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    with open(fifo, "w") as w:
        w.write("a.png\n")
        w.flush()
        assert first_seen.wait(30), "the first path was not delivered before the list ended"
        w.write("b.png\n")
    reader.join(30)
    assert got == ["a.png", "b.png"]


def test_standard_input_list(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("x.png\ny.jpg\n"))
    assert list(expand_inputs(["@-"])) == ["x.png", "y.jpg"]


def test_bad_list_specs_say_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        list(expand_inputs([f"@{tmp_path / 'nope.txt'}"]))
    with pytest.raises(ConfigError, match="without '@'"):
        list(expand_inputs([f"@{tmp_path}"]))
    with pytest.raises(ConfigError, match="@FILE"):
        list(expand_inputs(["@"]))


def test_missing_paths_pass_through_and_are_reported(tmp_path):
    (tmp_path / "ok.png").write_bytes(b"")
    (tmp_path / "list.txt").write_text("gone-too.png\n")
    specs = [str(tmp_path / "ok.png"), str(tmp_path / "gone.png"), f"@{tmp_path / 'list.txt'}", "@-"]
    assert check_inputs(specs) == [str(tmp_path / "gone.png")]  # list entries are checked when decoded
    assert list(expand_inputs(specs[:3])) == [*specs[:2], "gone-too.png"]
    with pytest.raises(ConfigError, match="does not exist"):
        check_inputs(["@nowhere.txt"])  # before the run: nothing could come of it


def test_chunks_follow_the_input_index_not_the_survivors():
    """Skipping items (resume, another rank's share) never changes which items share a batch."""
    items = [(i, f"{i}.png") for i in range(10) if i not in (1, 2, 5)]
    got = [(c.number, c.indices) for c in chunks(items, 4)]
    assert got == [(0, [0, 3]), (1, [4, 6, 7]), (2, [8, 9])]
