"""The Slurm launcher against a real cluster (``.ci/slurm-cluster.sh start``: one node on this
machine): the smoke grid built by Slurm jobs and the claims passing from the cache it filled, a
job cancelled mid-run with ``scancel`` coming back with the bits of an uninterrupted run, a
job that raises reported with its log, and ``claims --until-decided`` over two looks whose runs
Slurm jobs build. Marked ``slurm``: without a cluster they fail in CI and
are skipped elsewhere (the root conftest)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from dtcore import sequential
from dtcore.checkpoints import read_manifest
from dtcore.grid import grid
from dtcore.profiles import SMOKE, JobResources
from dtcore.runs import runs_root
from dtcore.slurm import SlurmOptions, SubmititBackend, Task, Tracker
from tests.tiny_runs import build_slow_run, slow_profile, store, write_dataset

ROOT = Path(__file__).resolve().parent.parent
ONE_CPU = JobResources(cpus=1, gpus=0, time_min=10, mem_gb=None)

pytestmark = pytest.mark.slurm


@pytest.fixture(autouse=True)
def _jobs_import_this_checkout(tmp_path, monkeypatch):
    """Jobs inherit the environment (sbatch --export=ALL): this checkout and a temporary cache."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(ROOT)


def _trained_state_sha256(run) -> str:
    """sha256 of what training computed at the last epoch (model, optimiser, scheduler, sampler,
    step), tensors by bytes in key order. The checkpoint file's own hash also covers logged wall
    times, which differ after any resume (docs/fixtures.md)."""
    digest = hashlib.sha256()

    def feed(obj) -> None:
        if isinstance(obj, torch.Tensor):
            digest.update(f"{obj.dtype}{tuple(obj.shape)}".encode())
            digest.update(obj.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(obj, dict):
            for key in sorted(obj, key=str):
                digest.update(str(key).encode())
                feed(obj[key])
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                feed(item)
        else:
            digest.update(repr(obj).encode())

    state = run.state("last")
    feed({k: state[k] for k in ("model", "optimizer", "scheduler", "sampler", "step")})
    return digest.hexdigest()


# The claims that read every run of the smoke grid, and cheaply: Table 1 (the K20 runs), §5.4 (the
# noclip run), §5.5 (the K1 runs), §5.6.1 (the block runs). Every claim on a locally built smoke
# grid: tests/test_claims_layer.py.
EVERY_RUN_KIND = "table1 or sec5_4 or sec5_5 or sec5_6_1"


def _claims_on_slurm(tmp_path: Path, *options: str) -> tuple[subprocess.CompletedProcess, str, Path]:
    """``dtcore claims --profile smoke --envs hopper --launcher slurm`` with ``options``, its logs in
    ``tmp_path / "logs"`` and its report ``tmp_path / "claims.html"``: (process, output, report); the
    wall time printed."""
    config = tmp_path / "slurm.toml"
    config.write_text(f'poll_s = 1\nlog_dir = "{tmp_path / "logs"}"\n')
    report = tmp_path / "claims.html"
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "dtcore", "claims", "--profile", "smoke", "--envs", "hopper",
                          "--launcher", "slurm", "--slurm-config", str(config), "--workers", "1", *options,
                          "--report", str(report)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    print(f"dtcore claims --launcher slurm {' '.join(options)}, smoke hopper: {time.perf_counter() - start:.0f} s")
    return res, res.stdout + res.stderr, report


def test_the_smoke_grid_is_built_by_slurm_jobs_and_the_claims_pass_from_the_cache(tmp_path):
    res, out, report = _claims_on_slurm(tmp_path, "--seeds", "0,1", "-k", EVERY_RUN_KIND)
    # pytest's status (README, "Exit status"): 1 when a claim is contradicted; an error would be named below
    assert res.returncode in (0, 1) and "ended in an error" not in out and " error" not in out.split(
        "dtclaims headline:")[-1].split("\n")[0].replace("0 error", ""), out[-4000:]
    specs = grid(SMOKE, ["hopper"], [0, 1])
    for spec in specs:
        assert re.search(rf"slurm job \d+ {spec.id}: submitted", out) and re.search(rf"{spec.id}: done", out), spec.id
    assert f"dtclaims: slurm: {len(specs)} runs in " in out and f"{len(specs)} done, 0 failed" in out
    assert len(list(runs_root().glob("*/provenance.json"))) == len(specs)
    assert len(list((tmp_path / "logs").glob("*_0_log.out"))) == len(specs)
    assert "trained 0: -" in out, "the claims trained a run the jobs should have built"
    assert f"loaded {len(specs)}: " in out, "the claims did not read every run the jobs built"
    results = json.loads(report.with_suffix(".json").read_text())["results"]
    assert results and not [(r["nodeid"], r["message"][:300]) for r in results if r["outcome"] == "error"]


def test_a_job_cancelled_mid_run_is_submitted_again_and_ends_with_the_bits_of_an_uninterrupted_run(tmp_path):
    # scancel sends SIGTERM, which submitit's jobs let pass, then SIGKILL after KillWait (5 s in
    # .ci/slurm-cluster.sh): the two epochs left after the cancel must outlast it. At 400 steps an
    # epoch took about 2 s on an AVX-512 VM, which finished the run before the kill; at 1600, 6-7 s.
    data, steps = write_dataset(tmp_path / "data" / "hopper.pkl"), 1600
    roots = {"cancelled": tmp_path / "a", "straight": tmp_path / "b"}
    tasks = [Task(name, build_slow_run, (str(data), steps, str(root)), ONE_CPU) for name, root in roots.items()]
    lines: list[str] = []
    cancelled: list[str] = []

    def cancel_in_epoch_two() -> None:
        deadline = time.monotonic() + 600
        while not any(m := re.search(r"slurm job (\d+) cancelled: submitted", line) for line in lines):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        job_id = m.group(1)
        runs = roots["cancelled"] / "runs"
        while not any("epoch_001.pt" in read_manifest(f.parent) for f in runs.glob("*/epoch_001.pt")):
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)
        subprocess.run(["scancel", job_id], check=True)
        cancelled.append(job_id)

    thread = threading.Thread(target=cancel_in_epoch_two, daemon=True)
    thread.start()
    options = SlurmOptions(log_dir=str(tmp_path / "logs"), poll_s=0.5)
    result = Tracker(SubmititBackend(tmp_path / "logs", options), max_requeues=2, poll_s=0.5,
                     say=lines.append).run(tasks)
    thread.join(timeout=10)
    assert cancelled, "the job was never cancelled: " + "\n".join(lines)
    assert sorted(result.done) == ["cancelled", "straight"] and result.requeued == 1, "\n".join(lines)
    assert any(f"slurm job {cancelled[0]} cancelled: CANCELLED: submitted again as job" in line for line in lines)

    resumed = store(data, slow_profile(steps), root=roots["cancelled"]).get("hopper", "random", 0, "K20")
    straight = store(data, slow_profile(steps), root=roots["straight"]).get("hopper", "random", 0, "K20")
    assert not resumed.built and not straight.built, "the jobs left an incomplete run"
    assert resumed.provenance["resumed_from_epoch"] in (1, 2) and straight.provenance["resumed_from_epoch"] is None
    assert _trained_state_sha256(resumed) == _trained_state_sha256(straight)
    assert [r["train_loss_mean"] for r in resumed.log] == [r["train_loss_mean"] for r in straight.log]


def test_a_job_that_raises_fails_for_good_and_is_reported_with_its_log(tmp_path):
    missing = tmp_path / "nowhere" / "hopper.pkl"
    lines: list[str] = []
    options = SlurmOptions(log_dir=str(tmp_path / "logs"), poll_s=0.5)
    result = Tracker(SubmititBackend(tmp_path / "logs", options), max_requeues=2, poll_s=0.5, say=lines.append).run(
        [Task("broken", build_slow_run, (str(missing), 10, str(tmp_path / "cache")), ONE_CPU)])
    failure = result.failed["broken"]
    assert failure.state == "FAILED" and failure.attempts == 1 and result.done == []
    assert str(missing) in Path(failure.log).read_text(), "the log does not show the job's error"
    assert f"broken: failed (FAILED); log: {failure.log}" in "\n".join(lines)
    assert result.unavailable["broken"] == f"its Slurm job {failure.job_id} ended FAILED; log: {failure.log}"


def test_claims_until_decided_runs_two_looks_on_slurm(tmp_path):
    """``dtcore claims --until-decided --launcher slurm`` on smoke hopper up to 5 seeds (looks 3
    and 5) for the claims of §5.1 and §5.4: each look's runs built by Slurm jobs, exactly those its
    open claims read (look 2 only seeds 3-4 of the claim still open: §5.1's cross-model CKA, on
    the K=20 runs), the claims decided here from the cache, the sequential block of claims.json
    with both looks and a status per claim, and App. H.2 (it needs halfcheetah and walker2d) never
    run (about 2 min on 2 cores)."""
    from dtcore.sequential_plan import make_plan
    from tests.test_sequential import _declared

    res, out, report = _claims_on_slurm(tmp_path, "--until-decided", "--max-seeds", "5", "-k", "sec5_1 or sec5_4")
    assert res.returncode == 0, out[-4000:]
    block = json.loads(report.with_suffix(".json").read_text())["sequential"]
    assert block["design"]["looks"] == [3, 5] and [h["seeds"] for h in block["history"]] == [3, 5]
    claims = block["claims"]
    plan = make_plan(SMOKE, _declared(), ["hopper"], max_seeds=5)
    kept = [key for key, c in claims.items() if c["status"] != sequential.DESELECTED]
    looks = [plan.runs(0, kept), plan.runs(1, [key for key in kept if claims[key]["look"] == 2])]
    assert {key for key in plan.scheduled if key.startswith(("sec5_1.", "sec5_4."))} <= set(kept)
    assert claims["sec5_1.cross_model_cka_low|hopper"]["look"] == 2
    assert {s.seed for s in looks[1]} == {3, 4} and {(s.backbone, s.variant) for s in looks[1]} == {
        ("gpt2", "K20"), ("igpt", "K20"), ("random", "K20")}
    for k, specs in enumerate(looks):
        assert f"dtclaims: look {k + 1} of 2: {len(specs)} runs at seeds" in out, out[-4000:]
        assert f"dtclaims: slurm: {len(specs)} runs in " in out and f"{len(specs)} done, 0 failed" in out
        for spec in specs:   # one job per run: look 2 submits none of look 1's again
            assert len(re.findall(rf"slurm job \d+ {spec.id}: submitted", out)) == 1, spec.id
            assert re.search(rf"slurm job \d+ {spec.id}: done", out), spec.id
    n_runs = sum(map(len, looks))
    assert len(list(runs_root().glob("*/provenance.json"))) == n_runs
    assert len(list((tmp_path / "logs").glob("*_0_log.out"))) == n_runs
    assert out.count("trained 0: -") == 2, "the claims trained a run the jobs should have built"
    assert all(claims[key]["status"] in sequential.STOPS and claims[key]["look"] in (1, 2) for key in kept)
    # --budget counts each look's Slurm jobs: their runs' own time x the job's CPUs, then the claims here
    prov = [json.loads(p.read_text()) for p in runs_root().glob("*/provenance.json")]
    wall = {p["run"]: p["wall_time_s"] for p in prov}
    jobs = [sum(wall[s.id] for s in specs) * SMOKE.job.cpus / 3600 for specs in looks]
    assert all(h["hours"] > j > 0 for h, j in zip(block["history"], jobs)), (block["history"], jobs)
    assert block["spent_hours"] == pytest.approx(sum(h["hours"] for h in block["history"]))
    h2 = claims["appH2.hopper_return_carries_least_action_information|"]
    assert h2["status"] == sequential.DESELECTED and "--envs leaves out" in h2["reason"]
