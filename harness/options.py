"""Every option xentbench takes, written once and added both to the command line
(`harness.cli`, argparse) and to pytest (`harness.pytest_plugin`, ``pytest_addoption``):
each helper takes the ``add`` function of either, as pytest-benchmark's
``add_*_options(addoption, prefix=...)`` do. The benchmark options carry the prefix
``bench-`` under pytest (``--bench-size``) and none under ``python -m harness bench``
(``--size``), which forwards them to pytest with `bench_flags`.

Also here: what the values mean when one needs more than parsing (`resolve_device`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from harness.benchmark.case_sets import CASE_SETS, SIZES
from harness.benchmark.timing import DEFAULT_THREADS
from harness.equivalence.runner import CALL_TIMEOUT_S
from harness.problem import capabilities
from harness.problem.case import ID_DOC

Add = Callable[..., Any]  # argparse's add_argument or pytest's addoption / group.addoption
DEVICES = ("auto", *capabilities.DEVICES)  # the devices a contender may declare, or auto
L2_FLUSH_CHOICES = ("auto", "on", "off")


class DeviceError(ValueError):
    """A device that this machine does not have; the message says what to use instead."""


def resolve_device(choice: str) -> str:
    """``auto`` is CUDA when torch sees a GPU, else CPU; ``cuda`` without one is an error."""
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda: torch.cuda.is_available() is False on this machine; "
                          "use --device cpu or a CUDA build of torch")
    return choice


def whole_number(least: int, what: str, hint: str = "") -> Callable[[str], int]:
    """An argparse/pytest ``type`` accepting whole numbers >= ``least``; the error says so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of {what}, "
                                             f"{least} or more{hint}")
        return value

    parse.__name__ = what  # argparse names the type in its own messages
    return parse


# ---- contenders, device, run identity -------------------------------------------------
def add_contender_options(add: Add) -> None:
    add("--contender", action="append", default=[], metavar="NAME=MODULE:ATTR[@CAPS]",
        help="add an external multi-class contender (F.cross_entropy signature, or an "
             "nn.Module loss class MODULE:Class(k=v)); '@no-label-smoothing,dtypes=f32+f64' "
             "declares what it lacks (docs/correctness.md: Your own loss); repeatable")
    add("--binary-contender", action="append", default=[], metavar="NAME=MODULE:ATTR[@CAPS]",
        help="add an external binary contender (F.binary_cross_entropy_with_logits "
             "signature, or an nn.Module class); same syntax; repeatable")
    add("--only", action="append", default=[], metavar="NAME",
        help="run only the contender named exactly NAME (repeatable); a name that does not "
             "exist is an error listing the known ones")
    add("--call-timeout", type=positive_seconds, default=None, metavar="SECONDS",
        help=f"a contender call (forward and backward) running longer is recorded as a "
             f"failure with its case, and the run goes on (default: check derives it from "
             f"the reference's time on the case, at least 5 s, +120 s on a first compile; "
             f"pytest, bench and ab: {CALL_TIMEOUT_S:g})")


def positive_seconds(text: str) -> float:
    """An argparse/pytest ``type``: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of seconds")
    return value


class UnknownContender(ValueError):
    """``--only`` names a contender that is not there; the message lists the known ones."""


def check_only(only: list[str], known: list[str]) -> None:
    """A ``--only`` name that none of ``known`` has is an `UnknownContender` error."""
    if unknown := sorted(set(only) - set(known)):
        raise UnknownContender(f"--only {', '.join(unknown)}: no such contender; known: "
                               f"{', '.join(sorted(known))}")


def keep_only(contenders: list, only: list[str]) -> list:
    """``contenders`` whose name is in ``only``; all of them when ``only`` is empty."""
    return [c for c in contenders if not only or c.name in only]


def only_chosen(contenders: list, only: list[str]) -> list:
    """`keep_only`, after `check_only` against the contenders' own names."""
    check_only(only, [c.name for c in contenders])
    return keep_only(contenders, only)


def flush_l2(choice: str, device: str) -> bool:
    """Whether timed rounds start with a flushed device cache: ``auto`` is on for CUDA (the
    H200's 60 MB L2 holds the seed case's 48 MB working set, so a warm cache would time
    rounds at more than the memory's bandwidth) and off for CPU."""
    return choice == "on" or (choice == "auto" and device.startswith("cuda"))


def add_device_option(add: Add) -> None:
    add("--device", default="auto", choices=DEVICES,
        help="where contenders run (auto: cuda when available)")


def add_pytest_options(add: Add) -> None:
    """The options only the pytest plugin has: what it writes beside the run."""
    add("--defects", action="store_true",
        help="after the run, list every distinct defect of each contender whose "
             "equivalence test failed, each with its minimal case (as `python -m "
             "harness check` does)")
    add("--accuracy-out", default=None, metavar="DIR",
        help="record the largest errors against the oracle per contender, dtype "
             "and logit-scale band into DIR/accuracy-<process>.json")


def add_run_options(add: Add) -> None:
    add("--run-id", default=None, metavar="ID",
        help="id shared by the shard files of one run, so that reports merge them "
             "(default: $XENTBENCH_RUN_ID)")
    add("--shard", default=None, metavar="I/K",
        help="run only shard I of K (1-based): a stable split of the collected tests by "
             "node id, for one process per GPU or machine")


# ---- benchmark options: --bench-NAME under pytest, --NAME under `harness bench` --------
@dataclass(frozen=True)
class BenchOption:
    name: str                       # without prefix: "size" is --bench-size / --size
    kwargs: dict = field(default_factory=dict)

    def flag(self, prefix: str) -> str:
        return f"--{prefix}{self.name}"

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


BENCH_OPTIONS = (
    BenchOption("size", dict(default="small", choices=SIZES,
                             help="benchmark size preset: small keeps a 2-core CPU run to minutes")),
    BenchOption("cases", dict(default="all", metavar="{" + ",".join(CASE_SETS) + "}|CASE_ID[,...]",
                              help="which benchmark cases: the named landmarks, the generated "
                                   "ones, both (all), or your own by case id, e.g. "
                                   "n8-c2-512x512-p0.05-bf16-mean-winverse_freq; a comma "
                                   "joins several, sets and ids alike (the tokens of an id: "
                                   f"{ID_DOC})")),
    BenchOption("threads", dict(type=whole_number(0, "threads", ", 0 for torch's default"),
                                default=DEFAULT_THREADS, metavar="N",
                                help="intra-op threads for CPU benchmarks (default 1: with more, "
                                     "a busy neighbour process stalls OpenMP's barriers; 0 = "
                                     "torch's default)")),
    BenchOption("passes", dict(type=whole_number(1, "passes"), default=None, metavar="N",
                               help="time the selected benchmarks in N passes over the selection, "
                                    "one block of rounds each, pooled per benchmark (default 4 "
                                    "on CPU, 1 on CUDA: see harness/benchmark/passes.py)")),
    BenchOption("round-time", dict(type=float, default=None, metavar="SECONDS",
                                   help="target seconds of timed rounds per benchmark and "
                                        "process (default 0.25 small, 1.0 full, divided among "
                                        "the pooled processes)")),
    BenchOption("processes", dict(type=whole_number(1, "processes"), default=None, metavar="K",
                                  help="time everything in K pytest processes, each with 1/K of "
                                       "the round time, and pool their rounds: drift that lasts a "
                                       "process averages out (default under pytest: 3 on CPU, 1 "
                                       "on CUDA; `harness bench`: 1; make bench-ci: 3)")),
    BenchOption("flush-l2", dict(default="auto", choices=L2_FLUSH_CHOICES,
                                 help="zero a buffer larger than the device cache before every "
                                      "timed round (auto: on for CUDA, off for CPU, whose caches "
                                      "are per core; docs/benchmarking.md, 'CUDA timing')")),
    BenchOption("deadline", dict(type=positive_seconds, default=None, metavar="SECONDS",
                                 help="skip every test not started SECONDS after the session "
                                      "began (reason 'deadline'), so that what was timed is "
                                      "saved: a stage of a time-boxed run stops cleanly")),
)


def add_bench_options(add: Add, prefix: str = "bench-", names: Sequence[str] | None = None) -> None:
    """The benchmark options (those in ``names`` only, when given: ``ab`` times blocks in
    its own workers, where passes, processes and the round time mean nothing)."""
    for option in BENCH_OPTIONS:
        if names is None or option.name in names:
            add(option.flag(prefix), dest=f"{prefix.replace('-', '_')}{option.dest}", **option.kwargs)


def bench_flags(values: Mapping[str, Any]) -> list[str]:
    """The pytest flags (``--bench-NAME=VALUE``) for the benchmark options in ``values``
    (keyed by `BenchOption.dest`) that differ from their defaults."""
    flags = []
    for option in BENCH_OPTIONS:
        switch = option.kwargs.get("action") == "store_true"
        default = option.kwargs.get("default", False if switch else None)
        value = values.get(option.dest, default)
        if value == default:
            continue
        flags.append(option.flag("bench-") if value is True else f"{option.flag('bench-')}={value}")
    return flags


def contender_flags(contender: list[str], binary_contender: list[str], only: list[str] = (),
                    call_timeout: float | None = None) -> list[str]:
    """The contender options as pytest flags (``python -m harness bench`` forwards them)."""
    timeout = [f"--call-timeout={call_timeout:g}"] if call_timeout is not None else []
    return [*(f"--contender={s}" for s in contender),
            *(f"--binary-contender={s}" for s in binary_contender),
            *(f"--only={s}" for s in only), *timeout]
