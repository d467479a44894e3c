"""``--out FILE``: a whole input stream through the model into one results file, resumable, one or many ranks.

The flow on every rank: rank 0 checks what is on disk and picks the run number; each rank reads which paths
are already written, predicts the chunks of its shard that are not, and publishes one part file per batch
(:mod:`nin.predict.parts`); when all ranks are done, rank 0 merges the parts in input order into ``FILE``
atomically (:func:`nin.atomic.atomic_open`). Until then an older ``FILE`` is left as it was.

On resume an input is done when its path is a row of ``FILE`` (a finished earlier run), or when the journal of
the interrupted run holds its row at the same place in the input (so a path given twice gets both its rows).
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nin.atomic import atomic_open
from nin.errors import ConfigError, NinError
from nin.predict import parts, shard
from nin.predict.engine import Predictor, check_options, predict_batches, resolve_batch_size
from nin.predict.formats import output_format, read_table, write_table
from nin.predict.rows import Columns
from nin.train.distributed import DistContext

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run did. ``rows``/``failed`` count the finished file; the rest count this rank's own work."""

    rows: int = 0  # rows in --out
    failed: int = 0  # error rows in --out
    predicted: int = 0  # rows this rank produced in this run
    skipped: int = 0  # inputs of this rank's shard already in --out or its journal
    seconds: float = 0.0  # from the first batch out of the model to the last (start-up excluded)
    steady_images: int = 0  # images after the first batch, over ``seconds``

    @property
    def img_s(self) -> float:
        return self.steady_images / self.seconds if self.seconds > 0 else float("nan")


def _prepare(out: Path, columns: Columns, model: str, resume: bool, overwrite: bool) -> int:
    """Rank 0: check ``--out`` and its journal against the options; returns this run's number."""
    folder = parts.parts_dir(out)
    if not resume and (out.exists() or folder.exists()):
        what = f"{out} already exists" if out.exists() else f"{folder} holds an unfinished run"
        if not overwrite:
            raise ConfigError(f"{what}: add --resume to predict only the files it lacks, or --overwrite to start again")
        parts.remove_journal(folder)  # an old --out stays until the new one replaces it
    for stale in out.parent.glob(f".{glob.escape(out.name)}.*.tmp"):  # a merge killed before its rename
        stale.unlink(missing_ok=True)
    if resume and out.exists():
        have = read_table(out)[0]
        if have is not None and have != columns:
            raise ConfigError(
                f"{out} has the columns of --top-k {have.top_k}{' --cam-box' if have.cam_box else ''}; "
                "resume it with the same options"
            )
    if folder.exists():
        parts.check_meta(folder, columns, model)
        parts.remove_unfinished(folder)
        parts.drop_damaged(folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(exist_ok=True)
    parts.write_meta(folder, columns, model)
    return parts.next_run(folder)


def _agree_on_run(out: Path, columns: Columns, model: str, resume: bool, overwrite: bool, ctx: DistContext) -> int:
    """Rank 0 prepares; every rank gets the run number, or raises the same one-line error."""
    answer: tuple = ()
    if ctx.is_main:
        try:
            answer = ("ok", _prepare(out, columns, model, resume, overwrite))
        except NinError as exc:
            answer = ("error", str(exc))
            if not ctx.enabled:
                raise
    answer = shard.from_main(answer, ctx)
    if answer[0] == "error":
        raise ConfigError(answer[1])
    return int(answer[1])


def _base_records(out: Path, resume: bool) -> Iterator[dict]:
    if resume and out.exists():
        yield from read_table(out)[1]


def _merge(out: Path, columns: Columns, resume: bool, base_done: parts.DoneSet) -> tuple[int, int]:
    """Rank 0: base rows + parts in input order -> ``out`` (atomically); returns (rows, failed).

    ``base_done``: the paths of ``out``'s rows, read once by :func:`predict_to_file`.
    """
    folder = parts.parts_dir(out)
    failed = 0

    def counted(records: Iterable[dict]) -> Iterator[dict]:
        nonlocal failed
        for rec in records:
            failed += bool(rec["error"])
            yield rec

    records = parts.merged_records(folder, _base_records(out, resume), base_done)
    with atomic_open(out) as f:
        rows = write_table(f, columns, counted(records), fmt=output_format(out))
    parts.remove_journal(folder)
    return rows, failed


def predict_to_file(
    predictor: Predictor,
    inputs: Iterable[str],
    out: str | os.PathLike,
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    top_k: int = 5,
    cam_box: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    ctx: DistContext | None = None,
    pool: str = "auto",
    overlap: bool | None = None,
    jpeg_draft: bool = False,
) -> RunSummary:
    """Predict every input path into ``out`` (``.csv``, ``.jsonl`` or ``.parquet``), one row each, in input order.

    Args:
        predictor: the model.
        inputs: image paths in input order (see :func:`nin.predict.inputs.expand_inputs`); streamed.
        out: the results file.
        batch_size: images per decoded chunk and per part file (``None``: by the input size, see
            :func:`nin.predict.engine.default_batch_size`); the model runs them in its own slices.
        workers: decoding processes or threads (``None``: one per core, at most 8; 0: this thread only).
        top_k: classes per row (capped at the class count).
        cam_box: add the top class's CAM box.
        resume: skip the paths already in ``out`` or in the journal of an interrupted run.
        overwrite: replace an existing ``out`` (and drop an unfinished journal) instead of refusing.
        progress: a progress bar (img/s) on this rank's standard error.
        ctx: the torchrun group (see :func:`nin.predict.shard.join_group`); ``None`` for one process.
        pool: ``processes``, ``threads`` or ``auto`` (by the input size): who decodes (see
            :func:`nin.predict.engine.predict_batches`).
        overlap: decode ahead while the model runs (``None``: on a GPU only).
        jpeg_draft: decode large JPEGs at a reduced scale (faster; changes pixels: not the exact preprocessing).
    """
    out = Path(out)
    ctx = ctx or DistContext()
    output_format(out)
    batch_size = resolve_batch_size(predictor, batch_size)
    columns = Columns(min(top_k, len(predictor.classes)), cam_box)
    model = predictor.info.sha256 or predictor.info.name
    workers = check_options(
        predictor, batch_size, workers, top_k, cam_box, pool, overlap
    )  # every rank, before the disk
    run = _agree_on_run(out, columns, model, resume, overwrite, ctx)
    folder = parts.parts_dir(out)
    base_done = parts.DoneSet(r["path"] for r in _base_records(out, resume))
    journal_done = parts.DoneSet(parts.journal_keys(folder))
    summary = RunSummary()

    def mine() -> Iterator[tuple[int, str]]:
        for index, path in enumerate(inputs):
            if shard.takes(index // batch_size, ctx):
                if path in base_done or parts.journal_key(index, path) in journal_done:
                    summary.skipped += 1
                else:
                    yield index, path

    if (len(base_done) or len(journal_done)) and ctx.is_main:
        log.info("resuming: %d rows already written", len(base_done) + len(journal_done))
    gate = _PartGate(hold_model=_model_on_cpu(predictor))
    batches = predict_batches(
        predictor,
        mine(),
        batch_size=batch_size,
        workers=workers,
        top_k=top_k,
        cam_box=cam_box,
        pool=pool,
        overlap=overlap,
        jpeg_draft=jpeg_draft,
        before_forward=gate.before_forward,
    )
    _write_parts(batches, folder, run, columns, batch_size, ctx, progress, summary, gate)
    shard.wait_all(ctx)
    counts = _merge(out, columns, resume, base_done) if ctx.is_main else (0, 0)
    summary.rows, summary.failed = shard.from_main(counts, ctx)
    return summary


def _model_on_cpu(predictor: Predictor) -> bool:
    device = getattr(getattr(predictor.backend, "runtime", None), "device", None)
    return device is None or device.type == "cpu"  # an ONNX backend runs on the CPU


class _PartGate:
    """Where the previous batch's part write is waited for: before the next forward pass, or before the next write.

    On a CPU the model's threads hold every core and wait for each other at every layer, so a writer thread
    (JSON, the GIL, the fsync's system call) running beside a forward pass slows the whole pass; waiting for it
    before the forward lets it run while the next batch is being decoded instead (``hold_model``). On a GPU
    the write overlaps the model and only the next write waits for it.
    """

    def __init__(self, hold_model: bool) -> None:
        self.hold_model = hold_model
        self.pending = None

    def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()  # the part is on disk, or its error is raised here

    def before_forward(self) -> None:
        if self.hold_model:
            self.wait()


def _write_parts(
    batches, folder: Path, run: int, columns: Columns, batch_size: int, ctx, progress, summary, gate: _PartGate
) -> None:
    """One part file per batch, written by a helper thread while the next batch is decoded (``gate``).

    The fsync of a part can take longer than a batch on a busy disk; one thread writes while the main thread
    goes on, and the next batch's write (or forward pass, see :class:`_PartGate`) waits for the previous
    one, so at most one finished batch is not yet on disk at any moment. Fills in the summary's counts and
    its steady-state timing.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    bar = tqdm(unit="img", disable=not progress, dynamic_ncols=True, leave=False)
    t_first = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nin-parts") as writer:
        try:
            for batch in batches:
                chunk = batch[0].index // batch_size
                records = [(r.index, r.record(columns)) for r in batch]
                gate.wait()
                gate.pending = writer.submit(parts.write_part, folder, run, ctx.rank, chunk, records)
                summary.predicted += len(batch)
                if t_first is None:
                    t_first = time.perf_counter()  # the first batch carries the start-up: workers, warm-up
                else:
                    summary.steady_images += len(batch)
                bar.update(len(batch))
            gate.wait()
            if t_first is not None:
                summary.seconds = time.perf_counter() - t_first
        finally:
            bar.close()
