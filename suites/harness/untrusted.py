"""Contenders that take their process down, for the isolation tests (`test_isolation.py`)
and the README's demonstration: each is right except on one kind of case, where it hangs
with SIGALRM blocked, dies of a segmentation fault, aborts as a failed C++ assertion does,
or allocates without bound. Not a test module: imported through ``--contender``."""

from __future__ import annotations

import ctypes
import os
import signal

import torch
import torch.nn.functional as F


def hangs_on_sum(input, target, reduction="mean", **options):
    """Deadlocks on 'sum' the way native code does: SIGALRM blocked, then a wait in C that
    never returns to the interpreter, so the harness's alarm can neither interrupt it nor
    run its handler."""
    if reduction == "sum":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        while True:
            ctypes.CDLL(None).sleep(1_000_000)
    return F.cross_entropy(input, target, reduction=reduction, **options)


def segfaults_on_sum(input, target, reduction="mean", **options):
    """Reads address 0 on 'sum': SIGSEGV."""
    if reduction == "sum":
        ctypes.string_at(0)
    return F.cross_entropy(input, target, reduction=reduction, **options)


def aborts_when_weighted(input, target, weight=None, **options):
    """abort() on class weights, as a failed TORCH_CHECK in a C++ extension does."""
    if weight is not None:
        os.abort()
    return F.cross_entropy(input, target, weight=weight, **options)


def allocates_on_sum(input, target, reduction="mean", **options):
    """Allocates 256 MiB blocks without bound on 'sum' (address space, which is what the
    worker's limit counts: unwritten, so that the test does not fill the machine first)."""
    if reduction == "sum":
        kept = []
        while True:
            kept.append(torch.empty(1 << 28, dtype=torch.uint8))
    return F.cross_entropy(input, target, reduction=reduction, **options)
