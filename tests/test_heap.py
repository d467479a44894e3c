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


def _plain_env(**env: str) -> dict[str, str]:
    """This environment without any allocator choice of its own (so the probe starts on glibc's defaults)."""
    mine = ("LD_PRELOAD", "GLIBC_TUNABLES", heap.OPT_OUT)
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k not in mine}, **env}


def _probe(mode: str, **env: str) -> tuple[int, bool]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=_plain_env(**env), capture_output=True, text=True, check=True
    )
    faults, kept = out.stdout.split()
    return int(faults), kept == "True"


@pytest.mark.skipif(not GLIBC, reason="the allocator switch is glibc's")
def test_kept_memory_is_reused_without_page_faults():
    faults_system, kept_system = _probe("system")
    faults_kept, kept = _probe("keep")
    assert not kept_system and kept
    # glibc maps 64 MB afresh every round: at least one fault a round (16,384 with 4 KiB pages, ~32 where
    # transparent huge pages are always on); kept, the same pages serve every round.
    assert faults_system >= 7
    assert faults_kept * 20 <= faults_system


@pytest.mark.skipif(not GLIBC, reason="the allocator switch is glibc's")
def test_the_opt_out_leaves_the_allocator_alone():
    faults, kept = _probe("keep", **{heap.OPT_OUT: "1"})
    faults_kept, _ = _probe("keep")
    assert not kept and faults >= 7 and faults_kept * 20 <= faults


@pytest.mark.skipif(not GLIBC, reason="the allocator switch is glibc's")
@pytest.mark.parametrize(
    "code",
    [
        "from nin.train.runtime import select_runtime; select_runtime('cpu', 'fp32').setup()",  # training
        "from nin.train.runtime import inference_runtime; inference_runtime('cpu')",  # every inference path
    ],
)
def test_cpu_training_and_inference_keep_freed_memory(code):
    check = f"{code}; from nin import heap; print(heap.kept())"
    out = subprocess.run([sys.executable, "-c", check], env=_plain_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize(
    "env, reason",
    [
        ({heap.OPT_OUT: "1"}, "NIN_SYSTEM_MALLOC is set"),
        ({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, "another allocator is preloaded"),
        ({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576"}, "malloc is tuned by the environment"),
        (
            {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0:glibc.cpu.x86_ibt=on"},
            "malloc is tuned by the environment",
        ),
        ({"MALLOC_MMAP_MAX_": "65536"}, "malloc is tuned by the environment"),
        ({"MALLOC_ARENA_MAX": "2"}, None),  # other malloc settings do not stop the switch
        ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, None),
    ],
)
def test_a_users_allocator_choice_wins_and_only_that(monkeypatch, env, reason):
    for k in [k for k in os.environ if k.startswith("MALLOC_")] + [heap.OPT_OUT, "LD_PRELOAD", "GLIBC_TUNABLES"]:
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    expected = "not glibc" if not GLIBC else reason
    assert heap.allocator_choice() == expected


def test_off_glibc_nothing_is_tuned(monkeypatch):
    monkeypatch.setattr(heap.platform, "libc_ver", lambda: ("", ""))
    assert heap.allocator_choice() == "not glibc"
