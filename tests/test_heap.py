"""Freed memory kept in the process: page faults of a repeated allocation go, a user's allocator choice wins."""

import os
import platform
import subprocess
import sys

import pytest

from nin import heap

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Allocate, touch and free 64 MB again and again (as training steps do with their activations) and print the
# minor page faults of the last seven rounds and whether the heap is kept. The first rounds are left out: glibc
# parks a few freed blocks in between (a 64-byte-aligned block of the same size does not fit in the hole of the
# last one until neighbours coalesce; measured 7 rounds), then reuses them.
PROBE = """
import resource, sys
import torch
from nin import heap
kept = heap.keep_freed_memory() if sys.argv[1] == "keep" else False
for _ in range(12):
    torch.empty(16 * 2**20).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(7):
    torch.empty(16 * 2**20).fill_(1.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, kept)
"""


def _probe(mode: str, **env: str) -> tuple[int, bool]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != heap.OPT_OUT}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    faults, kept = out.stdout.split()
    return int(faults), kept == "True"


@pytest.mark.skipif(not GLIBC, reason="the allocator switch is glibc's")
def test_kept_memory_is_reused_without_page_faults():
    faults_system, kept_system = _probe("system")
    faults_kept, kept = _probe("keep")
    assert not kept_system and kept
    assert faults_system > 7 * 10_000  # 64 MB is 16,384 pages: every round maps them afresh
    assert faults_kept < 1_000  # the same pages every round


@pytest.mark.skipif(not GLIBC, reason="the allocator switch is glibc's")
def test_the_opt_out_leaves_the_allocator_alone():
    faults, kept = _probe("keep", **{heap.OPT_OUT: "1"})
    assert not kept and faults > 7 * 10_000


@pytest.mark.skipif(not GLIBC, reason="the allocator switch is glibc's")
@pytest.mark.parametrize(
    "code",
    [
        "from nin.train.runtime import select_runtime; select_runtime('cpu', 'fp32').setup()",  # training
        "from nin.train.runtime import inference_runtime; inference_runtime('cpu')",  # every inference path
    ],
)
def test_cpu_training_and_inference_keep_freed_memory(code):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != heap.OPT_OUT}
    check = f"{code}; from nin import heap; print(heap.kept())"
    out = subprocess.run([sys.executable, "-c", check], env=clean, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize(
    "env, reason",
    [
        ({heap.OPT_OUT: "1"}, "NIN_SYSTEM_MALLOC is set"),
        ({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, "another allocator is preloaded"),
        ({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576"}, "malloc is tuned by the environment"),
        ({"MALLOC_ARENA_MAX": "2"}, "malloc is tuned by the environment"),
    ],
)
def test_a_users_allocator_choice_wins(monkeypatch, env, reason):
    for k in [k for k in os.environ if k.startswith("MALLOC_")] + [heap.OPT_OUT, "LD_PRELOAD", "GLIBC_TUNABLES"]:
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    expected = "not glibc" if not GLIBC else reason
    assert heap.allocator_choice() == expected


def test_off_glibc_nothing_is_tuned(monkeypatch):
    monkeypatch.setattr(heap.platform, "libc_ver", lambda: ("", ""))
    assert heap.allocator_choice() == "not glibc"
