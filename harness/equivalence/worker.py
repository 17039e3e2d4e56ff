"""The worker process of `harness.equivalence.isolation.Isolated`: loads one contender and
judges it on the cases the harness sends, so that whatever the contender does to its
process (a segmentation fault, ``abort()``, a hang with signals blocked, an allocation
without bound) ends this process, which the harness watches, and not the run.

Started as ``python -m harness.equivalence.worker SPEC`` (SPEC: JSON with the contender's
name, family, ``MODULE:ATTR[@caps]`` target or none for an entry point, the device and the
address-space limit in bytes or null). Protocol: one JSON object per line on stdin (``{"op":
"verify", "case": ID, "props": [...], "timeout": S}`` or ``{"op": "quit"}``), one reply per
line on the original stdout; the contender's own prints go to stderr, which the harness
keeps in a log and quotes when the worker dies."""

from __future__ import annotations

import json
import os
import resource
import sys
import traceback

# allocation failures under the address-space limit, as torch and Python word them
OUT_OF_MEMORY = ("can't allocate memory", "MemoryError", "out of memory")


def _load(spec: dict):
    from harness import contenders as registry

    if spec["target"]:
        return registry.parse_spec(f"{spec['name']}={spec['target']}", spec["family"])
    found = [c for c in registry.from_entry_points(spec["family"]) if c.name == spec["name"]]
    if not found:
        raise registry.ContenderError(f"no entry point contender {spec['name']!r}")
    return found[0]


def _verify(contender, msg: dict, device: str) -> dict:
    from harness.equivalence.isolation import verdict_dicts
    from harness.equivalence.runner import CallTimeout, evaluate, judge_outcome, solve
    from harness.problem.case import Case
    from harness.problem.inputs import make_inputs

    inputs = make_inputs(Case.from_id(msg["case"]), device)
    truth = solve(inputs)
    backward = msg.get("backward", True)  # a forward-only benchmark's check: no backward
    outcome = evaluate(contender, inputs, backward=backward, requires_grad=True, timeout=msg["timeout"])
    if outcome.error and outcome.error.startswith(CallTimeout.__name__):
        return {"ok": True, "hang": True}
    if outcome.error and any(s in outcome.error for s in OUT_OF_MEMORY):
        return {"ok": True, "oom": outcome.error}
    verdicts = judge_outcome(contender, inputs, truth, outcome, tuple(msg["props"]))
    return {"ok": True, "verdicts": verdict_dicts(verdicts)}


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the contender's prints must not corrupt the protocol

    def reply(obj: dict) -> None:
        replies.write(json.dumps(obj) + "\n")
        replies.flush()

    try:
        if spec.get("memory"):
            resource.setrlimit(resource.RLIMIT_AS, (spec["memory"], spec["memory"]))
        contender = _load(spec)
    except Exception as exc:  # said to the harness, which reports it as the contender's failure
        reply({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    reply({"ok": True})
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("op") == "quit":
            return 0
        try:
            reply(_verify(contender, msg, spec["device"]))
        except Exception as exc:
            reply({"ok": False, "error": f"{type(exc).__name__}: {exc}",
                   "trace": traceback.format_exc()[-2000:]})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
