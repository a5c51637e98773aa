"""stylefw.runtime.resources: freed memory stays mapped during a run and is given back after it."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from stylefw.runtime.resources import freed_memory_kept

BLOCK = 24 * 2**20  # under glibc's largest mmap threshold (32 MiB), above its default (128 KiB): a fresh mapping


def resident_bytes() -> int:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def touched_block() -> torch.Tensor:
    return torch.ones(BLOCK // 4)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_stays_mapped_within_the_block_and_is_given_back_after() -> None:
    with freed_memory_kept() as kept:
        if not kept:
            pytest.skip("not glibc")
        block = touched_block()
        with_block = resident_bytes()
        del block
        kept_after_free = resident_bytes()
        assert kept_after_free > with_block - BLOCK // 4  # still mapped, for the next step to reuse
    assert resident_bytes() < kept_after_free - BLOCK // 2  # given back when the run ends
