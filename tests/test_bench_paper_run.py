"""bench/paper_run.py (issue 9) runs at smoke size on CPU: both paths, the FLOP count of docs/spec.md §9,
MFU against a given peak, the fp32 returns check, the projected paper run, the ratios and the profile."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "paper_run.py"
PEAK = 0.5  # TFLOP/s given on the command line: MFU must be measured against it
B, K, L, D = 64, 20, 2, 32  # batch, context, and the smoke body (n_layer x n_embd)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One run of the script at smoke size; MuJoCo's log goes to a temporary working directory."""
    tmp = tmp_path_factory.mktemp("paper_run")
    out = tmp / "figures.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "smoke", "--device", "cpu", "--steps", "3", "--rounds", "1",
         "--warmup", "1", "--episodes", "2", "--max-steps", "8", "--peak-tflops", str(PEAK), "--profile", "2",
         "--json", str(out)],
        cwd=tmp, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def test_the_smoke_run_prints_both_paths_the_projection_and_the_ratios(smoke_run):
    text, _ = smoke_run
    for needle in ("| fast |", "| published |", "projected full paper run", "ratios published / fast",
                   "returns identical in fp32", "6 * N_matmul * T"):
        assert needle in text, f"{needle!r} missing from the output:\n{text}"
    assert text.count("| fast |") == 3 and text.count("| published |") == 3  # training, evaluation, projection


def test_every_timing_figure_in_the_json_is_a_positive_number(smoke_run):
    _, r = smoke_run
    for path in ("fast", "published"):
        for key in ("ms_per_step", "steps_per_s", "tflops", "mfu", "warmup_s"):
            assert r["train"][path][key] > 0, (path, key, r["train"][path][key])
        for key in ("episodes_per_s", "wall_s", "env_steps", "forwards"):
            assert r["eval"][path][key] > 0, (path, key, r["eval"][path][key])
        for key in ("train_s", "eval_s", "eval_full_s", "total_s", "total_full_s"):
            assert r["projection"][path][key] > 0, (path, key, r["projection"][path][key])
    assert all(v > 0 for v in r["ratios"].values()), r["ratios"]


def test_the_flop_count_mfu_and_projection_follow_their_formulas(smoke_run):
    _, r = smoke_run
    n_matmul = L * 12 * D * D  # c_attn 3d^2 + c_proj d^2 + c_fc 4d^2 + mlp c_proj 4d^2 per block
    assert r["n_matmul"] == n_matmul
    assert r["flops_per_step"] == pytest.approx(6 * n_matmul * B * 3 * K + 3 * L * B * 4 * (3 * K) ** 2 * D)
    for path in ("fast", "published"):
        t, p = r["train"][path], r["projection"][path]
        assert t["tflops"] == pytest.approx(r["flops_per_step"] * t["steps_per_s"] / 1e12)
        assert t["mfu"] == pytest.approx(t["tflops"] / PEAK)
        assert p["train_s"] == pytest.approx(40 * 2500 / t["steps_per_s"])
        assert p["eval_s"] == pytest.approx(40 * 200 / r["eval"][path]["episodes_per_s"])
    assert r["ratios"]["train_steps_per_s"] == pytest.approx(
        r["train"]["fast"]["steps_per_s"] / r["train"]["published"]["steps_per_s"])


def test_batched_and_sequential_rollouts_give_identical_returns_in_fp32(smoke_run):
    _, r = smoke_run
    ev = r["eval"]
    assert ev["returns_identical_fp32"] is True, ev
    assert ev["max_abs_return_diff_fp32_check"] == 0.0
    assert ev["fast"]["batched"] and not ev["published"]["batched"]
    assert ev["fast"]["forwards"] < ev["published"]["forwards"]  # one forward per step for all episodes


def test_the_paper_size_step_is_about_2e12_flops_as_the_spec_estimates(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_paper_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    n_matmul = 12 * 12 * 768 ** 2  # 84.9M (docs/spec.md §9)
    flops = module.flops_per_step(n_matmul, 12, 768, 64, 20)
    assert flops == pytest.approx(2.0e12, rel=0.02)  # spec §9: "≈ 2.0e12 FLOPs per training step"
    assert 40 * 2500 * flops == pytest.approx(2.0e17, rel=0.02)


def test_the_profile_names_the_top_operators_and_counts_the_calls_of_a_step(smoke_run):
    text, r = smoke_run
    pr = r["profile"]
    assert pr["steps"] == 2 and pr["wall_ms_per_step"] > 0 and pr["ops_per_step"] > 100, pr
    assert pr["busy_ms_per_step"] is None  # the device's busy time exists on a GPU only
    assert "profile of the fast path over 2 steps" in text and "operator calls a step" in text, text
    assert "aten::addmm" in text.split("profile of the fast path")[1], text  # the products are among the top
