"""The cases benchmarks time: the named landmarks every run includes and a deterministic
draw of generated ones, per size preset (``small`` keeps a 2-core CPU run to minutes), or
the cases a user names by id (``--cases``, `selected`)."""

from __future__ import annotations

import difflib

from harness.problem import strategies
from harness.problem.capabilities import DEVICES
from harness.problem.case import ID_DOC, Case, CaseError

MODES = ("fwd", "fwd_bwd")
SIZES = ("small", "full")
GENERATED = {"small": 4, "full": 12}
ROUND_TIME = {"small": 0.25, "full": 1.0}  # seconds of timed rounds per benchmark and run


def landmarks(size: str, device: str) -> dict[str, Case]:
    """Named cases every run includes. ``small`` keeps a 2-core CPU run within minutes."""
    small = size == "small"
    llm_rows = 4096 if device.startswith("cuda") and not small else 256
    volume = (32, 64, 64) if small else (64, 128, 128)
    found = {
        "seed_segmentation": Case(n=8, c=2, spatial=(512, 512), p=0.05, weights="inverse_freq"),
        "seed_segmentation_bce": Case(n=8, c=1, spatial=(512, 512), p=0.05, weights="inverse_freq",
                                      family="binary"),
        # multi-label classification, unweighted: what an unweighted binary contender is timed on
        "multilabel_bce": Case(n=256, c=1, spatial=(1000,), p=0.01, family="binary",
                               channel_dim=False),
        "classification": Case(n=256, c=1000, p=0.01),
        "llm_vocab": Case(n=llm_rows, c=32000, p=0.001),
        "volume_3d": Case(n=2, c=4, spatial=volume, p=0.02, weights="balanced"),
    }
    if not small and device.startswith("cuda"):
        found["seed_segmentation_large"] = Case(n=64, c=2, spatial=(1024, 1024), p=0.05,
                                                weights="inverse_freq")
        found["seed_segmentation_large_bce"] = Case(n=64, c=1, spatial=(1024, 1024), p=0.05,
                                                    weights="inverse_freq", family="binary")
    return found


def headline(size: str, device: str) -> dict[str, Case]:
    """The headline table's cases: the seed's inverse-frequency weighted cross-entropy, f32
    and bf16, with the weights given and computed from the targets in every call
    (``percall``); its binary form (BCE's weight/pos_weight); the vocabulary cases, bf16
    with 5 % of the targets ignored, with and without label smoothing. GPU sizes on CUDA
    with the ``full`` preset, CPU sizes otherwise.

    In rounds of four, one case of each kind per round (given weights, per-call weights,
    binary, vocabulary), f32 first: a deadline after the first four cases (the GPU check's
    table stage, where each compiled contender compiles per case) then cuts rounds of the
    least telling, not a whole kind."""
    gpu = device.startswith("cuda") and size != "small"
    seed = dict(n=64, spatial=(1024, 1024)) if gpu else dict(n=2, spatial=(64, 64))
    (big, big_rows), (vocab, rows) = (((128256, 4096), (32000, 4096)) if gpu
                                      else ((4000, 64), (1000, 64)))

    def seed_case(dtype: str, per_call: bool, binary: bool = False) -> Case:
        return Case(c=1 if binary else 2, p=0.05, dtype=dtype, weights="inverse_freq",
                    per_call=per_call, family="binary" if binary else "multiclass", **seed)

    def vocab_case(c: int, n: int, smoothing: float) -> Case:
        return Case(n=n, c=c, p=0.001, dtype="bf16", ignore_frac=0.05, label_smoothing=smoothing)

    return {
        # round 1: each kind once, f32 where the kind has it
        "seed_f32": seed_case("f32", False), "seed_f32_per_call": seed_case("f32", True),
        "seed_bce_f32": seed_case("f32", False, True), f"vocab_{big}": vocab_case(big, big_rows, 0.0),
        # round 2: bf16, label smoothing
        "seed_bf16": seed_case("bf16", False), "seed_bf16_per_call": seed_case("bf16", True),
        "seed_bce_bf16": seed_case("bf16", False, True),
        f"vocab_{big}_ls": vocab_case(big, big_rows, 0.1),
        # round 3: the binary form per call, the smaller vocabulary
        "seed_bce_f32_per_call": seed_case("f32", True, True),
        "seed_bce_bf16_per_call": seed_case("bf16", True, True),
        f"vocab_{vocab}": vocab_case(vocab, rows, 0.0),
        f"vocab_{vocab}_ls": vocab_case(vocab, rows, 0.1),
    }


def headline_names() -> dict[str, str]:
    """Every headline case's id and name, over every size preset and device kind: how
    `report` finds the headline cases in a run of any preset."""
    return {case.id: name for size in SIZES for device in DEVICES
            for name, case in headline(size, device).items()}


def landmark_names() -> dict[str, str]:
    """Every landmark's case id and name, over every size preset and device kind: how a
    report, which reads runs of any preset, knows a landmark when it sees one."""
    return {case.id: name for size in SIZES for device in DEVICES
            for name, case in landmarks(size, device).items()}


def generated(size: str) -> list[Case]:
    """A fixed list drawn from the equivalence suite's strategies at benchmark sizes."""
    strategy = strategies.signature_cases(sizes=strategies.BENCH if size == "full" else _SMALL_BENCH)
    return strategies.draw_cases(strategy, GENERATED[size])


_SMALL_BENCH = strategies.Sizes(max_n=32, max_c=512, max_side=128, max_positions=1 << 15,
                                max_elements=1 << 20, min_n=4, min_side=8)


CASE_SETS = ("all", "landmarks", "generated", "headline")  # "all": landmarks and generated


def selected(text: str, flag: str = "--cases") -> list[str | Case]:
    """What ``--cases`` names: comma-separated set names (`CASE_SETS`) and case ids, each
    set as its name and each id as its `Case`. Raises `CaseError` in one line naming the
    item it cannot read (``flag`` is the option's spelling, for that line)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise CaseError(f"{flag} {text!r}: give a case set ({', '.join(CASE_SETS)}) or case ids, "
                        "comma-separated")
    return [item if item in CASE_SETS else _case_of(item, flag) for item in items]


def _case_of(item: str, flag: str) -> Case:
    # every id has the digits of n<batch> and c<classes>: a word without one is a set name
    # misspelt, and reading it as an id would only say that it lacks those tokens
    if not any(ch.isdigit() for ch in item):
        close = difflib.get_close_matches(item, CASE_SETS, n=1)
        raise CaseError(f"{flag} {item!r}: not a case set ({', '.join(CASE_SETS)}) nor a case id"
                        + (f"; did you mean {close[0]!r}?" if close else
                           f" (case ids: {ID_DOC})"))
    return Case.from_id(item)


def bench_cases(size: str, device: str, which: str = "all") -> list[Case]:
    """The cases ``which`` (`selected`'s text) names, in its order, each once: a set's
    landmarks first, then its generated cases."""
    cases: list[Case] = []
    for item in selected(which):
        if isinstance(item, Case):
            cases.append(item)
            continue
        if item in ("all", "landmarks"):
            cases += landmarks(size, device).values()
        if item in ("all", "generated"):
            cases += generated(size)
        if item == "headline":
            cases += headline(size, device).values()
    return list(dict.fromkeys(cases))
