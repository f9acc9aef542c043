"""The Slurm launcher without a cluster (dtcore/slurm.py): options, resources, the dry-run plan,
the state-change lines and requeues of the tracker against a scripted backend, and how a run that
failed for good reaches the claims (an error naming it). The real cluster: test_slurm_cluster.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from submitit.slurm.slurm import _make_sbatch_string

from dtcore.grid import RunSpec
from dtcore.runs import RunUnavailableError, runs_root
from dtcore.profiles import JobResources
from dtcore.slurm import (Failure, LaunchResult, RunJob, SlurmOptions, Tracker, grid_tasks, load_options, phase, plan,
                          resources, sbatch_parameters)
from tests.tiny_runs import store, write_dataset

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))


# -- options and resources ---------------------------------------------------------------------

def test_options_come_from_a_toml_file_and_the_command_line_overrides_it(tmp_path):
    flat = tmp_path / "flat.toml"
    flat.write_text('partition = "gpu"\naccount = "lab"\npoll_s = 1.5\nsetup = ["module load cuda"]\n')
    options = load_options(flat, account="other", partition=None)
    assert options == SlurmOptions(partition="gpu", account="other", poll_s=1.5, setup=("module load cuda",))
    table = tmp_path / "table.toml"
    table.write_text('[slurm]\nqos = "high"\nmax_requeues = 1\n')
    assert load_options(table) == SlurmOptions(qos="high", max_requeues=1)
    assert load_options(None) == SlurmOptions()


def test_an_unknown_option_in_the_file_is_an_error_naming_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('partitoin = "gpu"\n')
    with pytest.raises(ValueError, match=r"bad\.toml: unknown key\(s\) \['partitoin'\]"):
        load_options(bad)


def test_the_paper_profile_asks_for_a_gpu_and_hours_and_mini_for_one_cpu():
    paper, mini = resources("paper", SlurmOptions()), resources("mini", SlurmOptions())
    assert paper.gpus == 1 and paper.time_min >= 60
    assert mini.gpus == 0 and mini.cpus == 1
    assert resources("mini", SlurmOptions(time_min=5, gpus=2)) == JobResources(cpus=1, gpus=2, time_min=5,
                                                                               mem_gb=mini.mem_gb)


def test_the_sbatch_script_carries_the_resources_partition_account_and_setup(tmp_path):
    options = SlurmOptions(partition="gpu", account="lab", qos="high", setup=("module load cuda",))
    params = sbatch_parameters(resources("paper", options), options, "dtclaims-hopper-seed0-gpt2-K20")
    script = _make_sbatch_string(command="python job.py", folder=tmp_path, **params)   # what submitit writes
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --qos=high", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --time=240", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=65536M",
                 "#SBATCH --job-name=dtclaims-hopper-seed0-gpt2-K20", "#SBATCH --signal=USR2@90", "module load cuda"):
        assert line in script.splitlines(), line
    assert "--gpus-per-node" not in " ".join(sbatch_parameters(resources("mini", SlurmOptions()), SlurmOptions(), "x"))


def test_slurm_states_map_to_the_five_phases():
    assert [phase(s) for s in ("PENDING", "REQUEUED", "RUNNING", "COMPLETING", "COMPLETED", "FAILED",
                               "OUT_OF_MEMORY", "CANCELLED by 0", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "LOST")] == [
        "queued", "queued", "running", "running", "done", "failed", "failed", "interrupted", "interrupted",
        "interrupted", "interrupted", "interrupted"]


def test_the_job_calls_its_function_and_its_checkpoint_submits_the_same_call_again(monkeypatch):
    import gc

    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    calls = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))   # not this process's objects
    job = RunJob(lambda a, b: calls.append("fn") or a + b)
    assert job(2, 3) == 5 and calls == ["fn", "freeze"]
    again = job.checkpoint(2, 3)
    assert again.function is job and again.args == (2, 3)


# -- the dry run -------------------------------------------------------------------------------

def test_a_dry_run_lists_only_the_runs_missing_from_the_cache_with_their_sbatch_flags(tmp_path):
    data = write_dataset(tmp_path / "data" / "hopper.pkl")
    tiny = store(data)
    tiny.get("hopper", "random", 0, "K1")                      # cached
    specs = [RunSpec("hopper", 0, "random", "K1"), RunSpec("hopper", 0, "random", "K20"),
             RunSpec("hopper", 1, "random", "K20")]
    options = SlurmOptions(partition="debug", account="lab", log_dir=str(tmp_path / "logs"))
    tasks = grid_tasks(tiny, specs, "smoke", options, session="s")
    assert [t.run_id for t in tasks] == ["hopper-seed0-random-K20", "hopper-seed1-random-K20"]
    assert len(list(runs_root().glob("*/provenance.json"))) == 1, "planning trained something"
    text = plan(tasks, options, len(specs))
    lines = text.splitlines()
    assert "would submit 2 Slurm job(s)" in lines[0] and "1 of 3 runs cached" in lines[0]
    assert "nothing is submitted" in lines[0] and str(tmp_path / "logs") in lines[0]
    assert lines[1] == ("  hopper-seed0-random-K20: sbatch --job-name=dtclaims-hopper-seed0-random-K20 --time=10 "
                        "--cpus-per-task=1 --mem=2048M --partition=debug --account=lab")
    assert len(lines) == 3
    assert len(grid_tasks(tiny, specs, "smoke", options, regen=True)) == 3


def test_a_dry_run_builds_no_asset_and_names_those_a_launch_would_build_first(tmp_path, monkeypatch):
    """Case 55: with the assets not built yet, a dry run builds nothing (a dataset collection or a
    pretraining takes minutes on mini): it names each asset a launch would build here first and,
    since the run keys hash them, plans a job for every run."""
    from dtcore.assets import collect, pretrain
    from dtcore.slurm import build_grid_on_slurm

    monkeypatch.setattr(collect, "collect_dataset", lambda *a, **kw: pytest.fail("the dry run collected a dataset"))
    monkeypatch.setattr(pretrain, "pretrain", lambda *a, **kw: pytest.fail("the dry run pretrained a body"))
    lines: list[str] = []
    options = SlurmOptions(log_dir=str(tmp_path / "logs"))
    result = build_grid_on_slurm("smoke", ("hopper",), (0,), ("random",), options=options, dry_run=True,
                                 say=lines.append)
    text = "\n".join(lines).splitlines()
    assert "2 asset(s) are not built yet" in text[0] and "at most 4 Slurm job(s)" in text[0]
    assert "nothing is built or submitted" in text[0]
    built_first = [line for line in text if line.startswith("  builds here first: ")]
    assert [Path(line.split(": ", 1)[1]).parent.name for line in built_first] == ["datasets", "pretrained"]
    assert result.planned == ["hopper-seed0-random-K20", "hopper-seed0-random-K1", "hopper-seed0-block0",
                              "hopper-seed0-block1"]
    assert not (tmp_path / "cache").exists(), "the dry run wrote into the cache"


def test_claims_with_a_dry_run_print_the_plan_and_run_no_claim(monkeypatch, tmp_path):
    import dtcore.slurm
    from dtcore import cli, process_group

    calls, ran = [], []
    monkeypatch.setattr(dtcore.slurm, "build_grid_on_slurm",
                        lambda *a, **kw: calls.append(kw) or LaunchResult(planned=["hopper-seed0-random-K20"]))
    monkeypatch.setattr(process_group, "call", lambda cmd, **kw: ran.append(cmd) or 0)
    assert cli.main(["claims", "--profile", "smoke", "--envs", "hopper", "--launcher", "slurm", "--dry-run",
                     "--partition", "debug", "--report", str(tmp_path / "c.html")]) == 0
    assert calls[0]["dry_run"] and calls[0]["options"].partition == "debug" and ran == []


def test_build_alone_reports_each_run_that_failed_for_good_and_exits_1(monkeypatch, capsys):
    import dtcore.slurm
    from dtcore import cli

    failed = LaunchResult(failed={"hopper-seed0-random-K20": Failure("hopper-seed0-random-K20", "7", "FAILED",
                                                                     "/l/7_0_log.out", 1)})
    monkeypatch.setattr(dtcore.slurm, "build_grid_on_slurm", lambda *a, **kw: failed)
    assert cli.main(["build", "--profile", "smoke", "--envs", "hopper", "--launcher", "slurm"]) == 1
    assert ("dtclaims: hopper-seed0-random-K20 was not built: its Slurm job 7 ended FAILED; log: /l/7_0_log.out"
            in capsys.readouterr().out)
    monkeypatch.setattr(dtcore.slurm, "build_grid_on_slurm", lambda *a, **kw: LaunchResult(done=["x"]))
    assert cli.main(["build", "--profile", "smoke", "--envs", "hopper", "--launcher", "slurm"]) == 0


# -- the tracker against a scripted backend ----------------------------------------------------

class ScriptedBackend:
    """Each submission of a run takes the next script of that run: the states squeue reports at
    successive polls (the last one repeats). ``None`` in a script: squeue did not answer."""

    def __init__(self, scripts: dict[str, list[list[str | None]]]) -> None:
        self.scripts = scripts
        self.jobs: dict[str, list[str | None]] = {}
        self.submitted: list[str] = []

    def submit(self, task):
        job_id = str(len(self.submitted) + 1)
        self.submitted.append(task.run_id)
        self.jobs[job_id] = list(self.scripts[task.run_id].pop(0))
        return SimpleNamespace(job_id=job_id, paths=SimpleNamespace(stdout=Path(f"/logs/{job_id}_0_log.out")))

    def states(self, jobs):
        states = {job.job_id: (self.jobs[job.job_id].pop(0) if len(self.jobs[job.job_id]) > 1
                               else self.jobs[job.job_id][0]) for job in jobs}
        return None if None in states.values() else states


def _task(run_id: str):
    return SimpleNamespace(run_id=run_id)


def _track(scripts, max_requeues=2):
    lines: list[str] = []
    backend = ScriptedBackend(scripts)
    result = Tracker(backend, max_requeues=max_requeues, poll_s=0, say=lines.append,
                     sleep=lambda s: None).run([_task(r) for r in scripts])
    return result, lines, backend


def test_the_tracker_says_one_line_per_state_change_and_a_summary():
    result, lines, _ = _track({"a": [["PENDING", "PENDING", "RUNNING", "RUNNING", "COMPLETED"]]})
    assert lines[:-1] == ["dtclaims: slurm job 1 a: submitted", "dtclaims: slurm job 1 a: queued",
                          "dtclaims: slurm job 1 a: running", "dtclaims: slurm job 1 a: done"]
    assert lines[-1].startswith("dtclaims: slurm: 1 runs in ") and lines[-1].endswith("1 done, 0 failed, 0 requeued")
    assert result.done == ["a"] and result.failed == {} and result.unavailable == {}


def test_a_cancelled_job_is_submitted_again_and_a_slurm_requeue_is_reported():
    result, lines, backend = _track({
        "cancelled": [["RUNNING", "CANCELLED by 0"], ["RUNNING", "COMPLETED"]],
        "preempted": [["RUNNING", "PENDING", "RUNNING", "COMPLETED"]],
    })
    assert backend.submitted == ["cancelled", "preempted", "cancelled"]
    assert ("dtclaims: slurm job 1 cancelled: CANCELLED: submitted again as job 3 (requeue 1 of 2), resumes from "
            "its last complete epoch") in lines
    assert "dtclaims: slurm job 3 cancelled: done" in lines
    assert ("dtclaims: slurm job 2 preempted: requeued by Slurm (state PENDING; `scontrol show job 2` says why), "
            "resumes from its last complete epoch") in lines
    assert sorted(result.done) == ["cancelled", "preempted"] and result.requeued == 2


@pytest.mark.parametrize("state", ["PENDING", "REQUEUED", "REQUEUE_HOLD"])
def test_a_job_slurm_requeued_is_reported_with_its_state_not_a_guessed_cause(state):
    """Case 56: Slurm requeues a job for reasons the tracker cannot see (preemption, a time limit, a
    launch lost when its node's slurmd died): the line gives the state and where to read why."""
    result, lines, _ = _track({"lost_launch": [["RUNNING", state, "RUNNING", "COMPLETED"]]})
    (line,) = [line for line in lines if "requeued" in line and "slurm job" in line]
    assert line == (f"dtclaims: slurm job 1 lost_launch: requeued by Slurm (state {state}; `scontrol show job 1` "
                    "says why), resumes from its last complete epoch")
    assert "preempt" not in line and "time limit" not in line
    assert result.done == ["lost_launch"] and result.requeued == 1


def test_a_failed_job_and_one_interrupted_beyond_the_budget_fail_for_good_with_their_logs():
    result, lines, backend = _track({
        "raises": [["RUNNING", "FAILED"]],
        "keeps_timing_out": [["TIMEOUT"], ["TIMEOUT"]],
    }, max_requeues=1)
    assert backend.submitted == ["raises", "keeps_timing_out", "keeps_timing_out"]
    assert "dtclaims: slurm job 1 raises: failed (FAILED); log: /logs/1_0_log.out" in lines
    assert "dtclaims: slurm job 3 keeps_timing_out: failed (TIMEOUT); log: /logs/3_0_log.out" in lines
    assert result.unavailable == {
        "raises": "its Slurm job 1 ended FAILED; log: /logs/1_0_log.out",
        "keeps_timing_out": "its Slurm job 3 ended TIMEOUT after 2 jobs; log: /logs/3_0_log.out"}
    summary = lines[-1].splitlines()
    assert summary[0].endswith("0 done, 2 failed, 1 requeued")
    assert summary[1:] == ["  failed raises: its Slurm job 1 ended FAILED; log: /logs/1_0_log.out",
                          "  failed keeps_timing_out: its Slurm job 3 ended TIMEOUT after 2 jobs; log: "
                          "/logs/3_0_log.out"]


def test_a_poll_that_squeue_does_not_answer_changes_nothing():
    result, lines, _ = _track({"a": [["RUNNING", None, "RUNNING", "COMPLETED"]]})
    assert [line.rsplit(": ", 1)[1] for line in lines[:-1]] == ["submitted", "running", "done"]
    assert result.done == ["a"]


# -- a run that failed for good reaches the claims as an error ---------------------------------

def test_an_unavailable_run_raises_naming_it_and_builds_nothing(tmp_path):
    data = write_dataset(tmp_path / "data" / "hopper.pkl")
    runs = store(data, unavailable={"hopper-seed0-random-K20": "its Slurm job 7 ended FAILED; log: /l/7.out"})
    with pytest.raises(RunUnavailableError, match=r"hopper-seed0-random-K20 is unavailable: its Slurm job 7 "
                                                  r"ended FAILED; log: /l/7\.out"):
        runs.get("hopper", "random", 0, "K20")
    assert not runs_root().exists()
    assert runs.get("hopper", "random", 0, "K1").built        # the others still build


def test_a_claim_that_needs_an_unavailable_run_ends_in_an_error_naming_it(tmp_path):
    unavailable = tmp_path / "unavailable.json"
    unavailable.write_text(json.dumps({"hopper-seed0-gpt2-K20": "its Slurm job 7 ended FAILED; log: /l/7.out"}))
    report = tmp_path / "claims.html"
    env = dict(os.environ, DTCORE_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "pytest", "claims/test_sec5_3_parameter_similarity.py",
                          "--profile", "smoke", "--envs", "hopper", "--seeds", "0", "-p", "no:cacheprovider",
                          "-p", "no:xdist", "-q", "-k", "largest_change_in_shallow_blocks and hopper-seed0-gpt2",
                          "--unavailable-runs", str(unavailable), "--claims-report", str(report)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    (result,) = json.loads(report.with_suffix(".json").read_text())["results"]
    assert result["outcome"] == "error", res.stdout[-2000:]
    assert "hopper-seed0-gpt2-K20 is unavailable: its Slurm job 7 ended FAILED; log: /l/7.out" in result["message"]
    assert not (tmp_path / "cache").exists() or not runs_root(tmp_path / "cache").exists()


def test_an_unreadable_unavailable_runs_file_is_a_usage_error(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pytest", "tests/test_config.py", "--co", "-q", "-p", "no:xdist",
                          "-p", "no:cacheprovider", "--unavailable-runs", str(tmp_path / "missing.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 4 and "--unavailable-runs: cannot read" in res.stdout + res.stderr
