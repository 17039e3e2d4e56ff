"""Command line: ``python -m harness {list,check,...}``."""

from __future__ import annotations

import argparse
import importlib
import sys

from harness.kernels import interpret_without_cuda

interpret_without_cuda()  # before the imports below: torch._dynamo imports Triton

from harness import contenders as registry  # noqa: E402
from harness.cases import CaseError  # noqa: E402
from harness.execute import DeviceError  # noqa: E402


class UsageError(ValueError):
    """Bad input from the command line or a bad file: printed in one line, exit code 2."""


def _add_contender_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--contender", action="append", default=[], metavar="NAME=MODULE:ATTR",
                   help="external multi-class contender (repeatable)")
    p.add_argument("--binary-contender", action="append", default=[], metavar="NAME=MODULE:ATTR",
                   help="external binary contender (repeatable)")


def _all_contenders(args) -> list[registry.Contender]:
    return (registry.resolve("multiclass", args.contender)
            + registry.resolve("binary", args.binary_contender))


def cmd_list(args) -> int:
    from harness.report import contender_table

    print(contender_table(_all_contenders(args)))
    return 0


def cmd_check(args) -> int:
    from harness.verdicts import run_check

    return run_check(args, _all_contenders(args))


# Modules that add their own subcommands: each has ``register(subparsers)``, which adds
# parsers whose ``func(args) -> exit code`` does the work.
COMMAND_MODULES = ("harness.bench_cli", "harness.reporting", "harness.compare")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="contenders with family and capabilities")
    _add_contender_flags(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("check", help="check contenders against the oracle and print verdicts")
    p.add_argument("case", nargs="*", help="case ids to check (default: a fixed generated set)")
    p.add_argument("--only", action="append", default=[], help="contender names to check")
    p.add_argument("--cases", type=int, default=60, help="generated cases per family")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    _add_contender_flags(p)
    p.set_defaults(func=cmd_check)

    for module in COMMAND_MODULES:
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (CaseError, registry.ContenderError, UsageError, DeviceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
