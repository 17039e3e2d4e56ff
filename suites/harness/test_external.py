"""The acceptance commands, run as a user runs them: pytest and ``python -m harness`` in a
subprocess from the repository root, with external contenders given by ``--contender``.

Each test starts one subprocess (so pytest-xdist cannot run a shared fixture twice) and
selects with ``-k`` only the tests it needs, to stay well under a minute in total.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from bench_run import IGNORES_WEIGHT
from fakes import two_defects

from harness.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENCE = "suites/contenders/test_equivalence.py"
BUILTINS = ("eager", "module", "logsoftmax_nll", "softmax_log_nll", "scratch",
            "compiled_eager", "compiled_logsoftmax_nll")
PROPERTIES = ("loss", "grad", "nonfinite", "inputs", "meta")
MIN_CASES = 200



# ---- helpers ---------------------------------------------------------------------------
def clean_env(pythonpath: Path | None = None) -> dict[str, str]:
    """The environment without the outer run's pytest/xdist/profile settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "XENTBENCH_")) and k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return env


def run(args: list[str], pythonpath: Path | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` from the repository root; stdout and stderr together."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=clean_env(pythonpath),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, check=False)


def pytest_run(*args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run(["-m", "pytest", EQUIVALENCE, "-p", "no:cacheprovider", "-q", *args],
               pythonpath=pythonpath)


def show(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}; output tail:\n{proc.stdout[-4000:]}"


def cases_checked(output: str) -> dict[str, int]:
    """The 'generated cases checked per test' section: test id → count."""
    _, sep, section = output.partition("generated cases checked per test")
    assert sep, "the run printed no 'generated cases checked' section"
    counts = {}
    for line in section.splitlines()[1:]:
        match = re.fullmatch(r"\s*(\d+)\s+(test_\S+)", line)
        if match:
            counts[match.group(2)] = int(match.group(1))
        elif line.startswith("="):
            break
    return counts


@pytest.fixture
def bad_module(tmp_path: Path) -> Path:
    (tmp_path / "badmod.py").write_text(IGNORES_WEIGHT)
    return tmp_path


# ---- pytest with external contenders ---------------------------------------------------
@pytest.mark.slow  # 60 cases for each of 5 properties in a child pytest (about 12 s)
def test_probe_contender_passes_every_property() -> None:
    """The acceptance run, on the 'dev' budget (60 cases per property) with a fixed seed so
    it is deterministic; the 'ci' budget is checked on eager below."""
    proc = pytest_run("--contender", "probe=torch.nn.functional:cross_entropy", "-k", "probe",
                      "--hypothesis-profile", "dev", "--hypothesis-seed", "0")
    assert proc.returncode == 0, show(proc)
    counts = cases_checked(proc.stdout)
    for prop in PROPERTIES:
        assert counts.get(f"test_multiclass_property[probe-{prop}]", 0) >= 60, counts
    assert all("probe" in test for test in counts), counts  # -k NAME selects it alone


def test_contender_ignoring_weight_fails_with_a_reproduction(
        bad_module: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    proc = pytest_run("--contender", "bad=badmod:fn", "-k", "bad and loss",
                      pythonpath=bad_module)
    assert proc.returncode == 1, show(proc)
    assert "reproduce: python -m harness check" in proc.stdout, show(proc)
    failed = re.search(r"property 'loss' fails on case (\S+)", proc.stdout)
    assert failed, show(proc)
    case_id = failed.group(1)
    assert "-w" in case_id  # the minimal counterexample is a weighted case
    line = re.search(r"reproduce: (python -m harness check .*)", proc.stdout).group(1).strip()
    assert line == f"python -m harness check {case_id} --only bad --contender bad=badmod:fn"

    # the printed line reproduces: its arguments to check's own entry point (in this
    # process; bad still runs in its worker process)
    argv = shlex.split(line)
    assert argv[:3] == ["python", "-m", "harness"], line
    monkeypatch.syspath_prepend(str(bad_module))  # as PYTHONPATH gives it to the command
    monkeypatch.setenv("PYTHONPATH", str(bad_module))  # and to its worker
    assert cli_main(argv[3:]) == 1
    out = capsys.readouterr().out
    assert f"FAIL bad on {case_id}" in out, out
    assert "loss: worst at index" in out, out


def test_bad_contender_spec_is_a_usage_error() -> None:
    # (not -q: with -q the spec is first read during collection; see the module report)
    proc = run(["-m", "pytest", EQUIVALENCE, "-p", "no:cacheprovider",
                "--contender", "nonsense"])
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, show(proc)
    assert ("ERROR: cannot read contender 'nonsense': write NAME=MODULE:ATTR, "
            "e.g. probe=torch.nn.functional:cross_entropy") in proc.stdout, show(proc)


@pytest.mark.slow  # 15 s; the same in process: test_defects' --defects test (make test)
def test_the_suites_list_every_distinct_defect_with_defects(tmp_path: Path) -> None:
    """A Hypothesis search stops at one counterexample per property; ``--defects`` lists
    both defects of a contender that has two, each with its minimal case."""
    (tmp_path / "twomod.py").write_text(inspect.getsource(two_defects))
    proc = pytest_run("--only", "two", "--contender", "two=twomod:two_defects@no-weights,no-soft-targets",
                      "-k", "loss", "--defects", pythonpath=tmp_path)
    assert proc.returncode == 1, show(proc)
    assert "FAIL two: 2 distinct defects" in proc.stdout, show(proc)
    assert "reduction='sum'" in proc.stdout and "ignored targets" in proc.stdout, show(proc)


def _config(**given):
    """The options the plugin reads, as a pytest.Config answers them."""
    from types import SimpleNamespace

    values = {"contender": [], "binary_contender": [], "only": [], **given}
    return SimpleNamespace(getoption=lambda name, default=None: values.get(name, default))


def test_only_selects_contenders_by_exact_name_and_a_typo_lists_the_names() -> None:
    """``-k eager`` also runs compiled_eager; ``--only eager`` runs eager alone. In process:
    the contenders the plugin parametrizes the suites with (a child pytest's collection
    cost 7 s; the pytest exit code of a usage error at configure is
    test_bad_contender_spec_is_a_usage_error's)."""
    from harness.pytest_plugin import session

    only = _config(only=["eager"])
    assert [c.name for c in session.resolve_contenders(only, "multiclass")] == ["eager"]
    assert session.resolve_contenders(only, "binary") == []
    everyone = [c.name for c in session.resolve_contenders(_config(), "multiclass")]
    assert "eager" in everyone and "compiled_eager" in everyone, everyone

    with pytest.raises(pytest.UsageError, match="--only eagre: no such contender; known:") as typo:
        session.check_only(_config(only=["eagre"]))
    assert "compiled_eager" in str(typo.value)


def test_ci_profile_is_the_default_and_draws_enough_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    """xentbench's runs draw under its 'ci' profile unless told otherwise, and 'ci' asks
    for at least `MIN_CASES` examples (the count a real run checks: the slow test below)."""
    from hypothesis import settings

    from harness.problem import strategies
    from harness.pytest_plugin.profiles import own_profile

    strategies.register_profiles()
    assert strategies.DEFAULT_PROFILE == "ci"
    monkeypatch.delenv("XENTBENCH_PROFILE", raising=False)
    assert own_profile(_config(hypothesis_profile=None)) == "ci"
    assert settings.get_profile("ci").max_examples >= MIN_CASES


@pytest.mark.slow  # MIN_CASES cases and more for one property of eager, in a child pytest
def test_ci_profile_checks_enough_cases_for_eager() -> None:
    proc = pytest_run("--hypothesis-profile", "ci", "-k", "eager and loss and not compiled", "-v")
    assert proc.returncode == 0, show(proc)
    assert "hypothesis profile 'ci'" in proc.stdout, show(proc)
    counts = cases_checked(proc.stdout)
    assert counts.get("test_multiclass_property[eager-loss]", 0) >= MIN_CASES, counts


# ---- python -m harness -----------------------------------------------------------------
def test_list_shows_the_multiclass_builtins_with_capabilities() -> None:
    proc = run(["-m", "harness", "list"])
    assert proc.returncode == 0, show(proc)
    rows = {line.split()[0]: line for line in proc.stdout.splitlines()[2:] if line.strip()}
    for name in BUILTINS:
        assert name in rows, show(proc)
        assert rows[name].split()[1] == "multiclass"
        assert "ignore_index" in rows[name] and "spatial" in rows[name] and "f64" in rows[name]
    for name in ("eager", "module", "scratch", "compiled_eager"):
        assert "label_smoothing" in rows[name]
    for name in ("logsoftmax_nll", "softmax_log_nll", "compiled_logsoftmax_nll"):
        assert "label_smoothing" not in rows[name]


# In-process: the same `main` the subprocess runs, without paying for another torch import.
def test_cli_bad_spec_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["list", "--contender", "nonsense"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: cannot read contender 'nonsense': write NAME=MODULE:ATTR, "
        "e.g. probe=torch.nn.functional:cross_entropy (declare what it lacks after '@', e.g. "
        "@no-label-smoothing)")
    assert cli_main(["list", "--contender", "x=no_such_module_xb:fn"]) == 2
    assert "cannot import module 'no_such_module_xb'" in capsys.readouterr().err
    assert cli_main(["list", "--contender", "x=torch.nn.functional:no_such_fn"]) == 2
    assert "has no attribute 'no_such_fn'" in capsys.readouterr().err


BROKEN = {  # a user's module that fails as it is imported, and the one line that says where
    "xb_syntax": ("import torch\n\nx = = 1\n", "xb_syntax.py:3: SyntaxError: invalid syntax"),
    "xb_raises": ("import torch\nSCALE = 2\nraise RuntimeError('no GPU here\\nmore')\n",
                  "xb_raises.py:3: RuntimeError: no GPU here"),
    # raised inside a library it calls: the module's own line, not the library's
    "xb_calls": ("import json\nTABLE = json.loads('{')\n", "xb_calls.py:2: JSONDecodeError: Expecting "
                 "property name enclosed in double quotes: line 1 column 2 (char 1)"),
    # found, but what it imports is not: no 'is it on PYTHONPATH?', the dependency by name
    "xb_needs": ("import torch\nimport numpyy\n", "xb_needs.py:2: imports numpyy, which is not "
                 "installed in this Python"),
}


@pytest.mark.parametrize("module", BROKEN)
def test_a_module_that_fails_to_import_is_one_line_with_its_file_and_line(
        module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        pytestconfig: pytest.Config) -> None:
    """The user's mistake, exit 2 (not a traceback and exit 1, a wrong loss's code); the
    same line from the plugin, as pytest's usage error."""
    from harness.pytest_plugin import session

    (tmp_path / f"{module}.py").write_text(BROKEN[module][0])
    monkeypatch.chdir(tmp_path)  # as a user runs it: the module in the working directory
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli_main(["list", "--contender", f"mine={module}:fn"]) == 2
    assert capsys.readouterr().err == f"error: contender mine: {BROKEN[module][1]}\n"
    monkeypatch.setattr(pytestconfig.option, "contender", [f"mine={module}:fn"])
    with pytest.raises(pytest.UsageError) as usage:
        session.resolve_contenders(pytestconfig, "multiclass")
    assert str(usage.value) == f"contender mine: {BROKEN[module][1]}"


@pytest.mark.slow  # one bench of 4 benchmarks in a child process, torch imported twice (about 15 s)
def test_bench_times_a_users_case_id_for_every_contender_and_report_shows_it(tmp_path: Path) -> None:
    """`bench ID` from the user's own directory: every contender asked for, both modes, on
    that case alone, each checked against the oracle first; `report` ranks them."""
    case_id = "n4-c3-8x8-p0.2-f32-sum-wbalanced"
    (tmp_path / "my_loss.py").write_text("from torch.nn.functional import cross_entropy as fn\n")
    out = tmp_path / "run.json"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "bench", case_id, "--contender", "mine=my_loss:fn",
         "--only", "mine", "--only", "eager", "--passes", "1", "--round-time", "0.02", "--out", str(out)],
        cwd=tmp_path, env=clean_env(ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300, check=False)
    assert proc.returncode == 0, show(proc)
    doc = json.loads(out.read_text())
    timed = {(b["extra_info"]["contender"], b["extra_info"]["mode"]): b["extra_info"]
             for b in doc["benchmarks"]}
    assert sorted(timed) == [(c, m) for c in ("eager", "mine") for m in ("fwd", "fwd_bwd")], sorted(timed)
    assert {info["case_id"] for info in timed.values()} == {case_id}
    assert {info["accuracy"] for info in timed.values()} == {"exact"}  # judged before timing
    assert f"{case_id} fwd_bwd\n  " in proc.stdout, show(proc)  # the summary, by its id
    assert cli_main(["report", str(out), "--out", str(tmp_path / "report"), "--no-plots"]) == 0
    tables = (tmp_path / "report" / "tables.md").read_text()
    ranking = tables.split(f"### `{case_id}` · fwd_bwd", 1)[1].split("###", 1)[0]
    assert "| mine |" in ranking and "| eager |" in ranking, ranking


def test_cli_lists_an_external_contender(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "xb_listed_mod.py").write_text(IGNORES_WEIGHT)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli_main(["list", "--contender", "mine=xb_listed_mod:fn"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("mine "))
    assert "multiclass" in row and "external xb_listed_mod:fn" in row


def test_a_contender_object_of_the_other_family_is_refused_with_the_flag_to_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "xb_binary_obj.py").write_text(
        "import torch.nn.functional as F\nfrom harness.contenders import Contender\n"
        "obj = Contender('b', 'binary', F.binary_cross_entropy_with_logits, 'bce')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli_main(["list", "--contender", "mine=xb_binary_obj:obj"]) == 2
    assert "a binary contender given as multiclass" in capsys.readouterr().err


def test_installed_package_registers_contenders_by_entry_point(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A distribution declaring the entry-point groups contributes contenders to `list`
    and to the suites, without any flag."""
    dist = tmp_path / "xent_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: xent-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[xentbench.contenders]\nviaep = torch.nn.functional:cross_entropy\n\n"
        "[xentbench.binary_contenders]\nviaep_bin = torch.nn.functional:binary_cross_entropy_with_logits\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # list in this process: entry points are read per call
    assert cli_main(["list"]) == 0
    listed = capsys.readouterr().out
    assert re.search(r"^viaep\s+multiclass\s", listed, re.M), listed
    assert re.search(r"^viaep_bin\s+binary\s", listed, re.M), listed
    # the suites: the contenders the plugin parametrizes them with (in process, as `list`)
    from harness.pytest_plugin import session

    suites = {family: [c.name for c in session.resolve_contenders(_config(), family)]
              for family in ("multiclass", "binary")}
    assert "viaep" in suites["multiclass"] and "viaep_bin" in suites["binary"], suites


def test_a_contender_wrong_only_in_an_extra_process_is_a_failure_of_the_run(shared_bench_run) -> None:
    """Pooled processes (the shared run: flaky is right in the first process, twice the
    loss in the extra one): the benchmark is not timed, the run's JSON lists the failure
    with the process that saw it, the summary says so and pytest exits 1 (no other test of
    that run fails: the exit status is the extra process's failure)."""
    run = shared_bench_run
    doc = run.doc
    assert [b["extra_info"]["contender"] for b in doc["benchmarks"]] == ["eager", "module"], run.show()
    assert doc["benchmarks"][0]["extra_info"]["processes"] == 2
    [failure] = doc["xentbench"]["failures"]
    assert failure["contender"] == "flaky" and failure["process"] == "2 of 2", failure
    assert failure["error"].startswith("in process 2 of 2: "), failure
    assert "flaky" in run.output and "in process 2 of 2" in run.output, run.show()
    assert " failed" not in run.output.splitlines()[-1], run.show()  # every test of its own passed
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.show()  # CI sees it


def test_a_run_whose_every_benchmark_failed_still_saves_its_json(failed_bench_run) -> None:
    """pytest-benchmark saves nothing when nothing was timed; the run's JSON then holds no
    benchmarks and the failures, and `bench` prints its summary with them (the session's
    shared failing `bench` run)."""
    run, out = failed_bench_run, failed_bench_run["out"]
    tail = f"exit {run['returncode']}; output tail:\n{run['output'][-4000:]}"
    doc = run["doc"]
    assert doc["benchmarks"] == [], tail
    [failure] = doc["xentbench"]["failures"]
    # the weighted mean of 2M positions is near the plain one: the gradient tells them apart
    assert failure["contender"] == "wrong" and failure["error"].startswith("grad: "), failure
    assert "not timed: grad" in run["output"] and f"results: {out}" in run["output"], tail
