"""The bench scripts at tiny sizes. bench/metrics.py and bench/evaluation.py (issues 3 and 4) print,
beside each ratio, the ceiling this CPU puts on it, and the MINE FLOP count follows the critic's
shapes; bench/step_efficiency.py, bench/train_step.py and bench/grid.py (issue 17) print every
ratio they promise, consistent with the times beside it."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _run(script: str, args: list[str], cwd: Path) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_every_bench_script_prints_its_help(script, tmp_path):
    # argparse formats help strings with %: a bare "95 % interval" breaks --help
    assert "usage:" in _run(script, ["--help"], tmp_path)


def _load_metrics_bench():
    spec = importlib.util.spec_from_file_location("bench_metrics", BENCH / "metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_metrics_bench_quick_prints_every_ratio_and_its_ceiling(tmp_path):
    text = _run("metrics.py", ["--quick"], tmp_path)
    ratios = re.findall(r"ratio\s+([\d.]+)x", text)
    assert len(ratios) == 1 + 3 + 2, text  # cka, three MINE critics, gradients with dropout on and off
    assert all(float(r) > 0 for r in ratios)
    ceilings = re.findall(r"ceiling.*= ([\d.]+)x", text)
    assert len(ceilings) == 3 + 1 and all(float(c) > 0 for c in ceilings), text
    # mine_many equals the loop, and per-sample gradients equal the published loop with dropout off
    assert all(float(d) < 1e-8 for d in re.findall(r"max \|difference\| ([\d.e+-]+) nats", text)), text
    assert float(re.search(r"max relative difference ([\d.e+-]+)", text).group(1)) < 1e-5, text


def test_the_mine_flop_count_follows_the_critic_shapes():
    bench = _load_metrics_bench()
    # one hidden layer of 4, dx = 1, dz = 2, n = 10 pairs in minibatches of 5, one pass:
    # layer 1: 5 * 3 * 4 MACs (x and z projected once); output layer: 2 * 5 rows * 4 * 1 MACs;
    # forward + weight gradients for both, input gradients for the output layer only.
    first, tail = 5 * 3 * 4, 2 * 5 * 4 * 1
    assert bench.mine_flops(1, 2, (4,), 10, 5, 1) == 2.0 * (2 * first + 3 * tail) * 2
    assert bench.mine_flops(1, 2, (4,), 10, 5, 3) == 3 * bench.mine_flops(1, 2, (4,), 10, 5, 1)


@pytest.mark.slow
def test_evaluation_bench_prints_the_speedup_and_the_forward_ceiling(tmp_path):
    text = _run("evaluation.py", ["--episodes", "2", "--max-steps", "5", "--n-layer", "1", "--n-embd", "16"],
                tmp_path)
    m = re.search(r"speed-up: ([\d.]+) \(([\d.]+)-([\d.]+)\)x, the median \(95 % interval; none under 6 rounds\) "
                  r"of 6 paired rounds", text)
    assert m and float(m.group(2)) <= float(m.group(1)) <= float(m.group(3)), text
    m = re.search(r"batch 1 ([\d.]+) ms, batch 2 ([\d.]+) ms .* = 2 x [\d.]+ / [\d.]+ = ([\d.]+)x", text)
    assert m, text
    f1, f2, ceiling = (float(g) for g in m.groups())
    assert ceiling == pytest.approx(2 * f1 / f2, rel=0.05, abs=0.06)
    assert "max |return difference| 0.00e+00" in text, text


def test_step_efficiency_bench_prints_each_bodys_share_of_the_matmul_rate(tmp_path):
    text = _run("step_efficiency.py", ["--quick", "--contexts", "20"], tmp_path)
    number, ratio, share = r"([\d.]+)", r"([\d.]+) \(([\d.]+)-([\d.]+)\)", r"(\d+)% \((\d+)%-(\d+)%\)"
    rows = re.findall(rf"^\| (\w+) .* \| 20 \| {number} \| (\d+) \| " + r" \| ".join([number] * 3 + [ratio] * 2 + [share] * 3)
                      + r" \|$", text, re.M)
    assert [r[0] for r in rows] == ["random", "language", "image"], text
    for _, gflop, rate, ref_ms, torch_ms, cpu_ms, *cells in rows:
        assert float(gflop) > 0 and float(rate) > 0
        (c_speedup, c_low, c_high), (speedup, low, high), *shares = (tuple(map(float, cells[i:i + 3]))
                                                                     for i in range(0, 15, 3))
        assert all(lo <= value <= hi for value, lo, hi in [(c_speedup, c_low, c_high), (speedup, low, high), *shares])
        # 6 rounds: the 95 % interval is [min, max] of the per-round ratios, which holds the ratio of the
        # medians; up to the printed digits (bounds to 0.01, milliseconds to 0.1)
        for slow_ms, lo, hi in ((ref_ms, low, high), (torch_ms, c_low, c_high)):
            r = float(slow_ms) / float(cpu_ms)
            digits = 0.005 + r * (0.05 / float(slow_ms) + 0.05 / float(cpu_ms))
            assert lo - digits <= r <= hi + digits, text
    assert re.search(r"K = 20 steps at or above 35% of the matmul rate \(cpu kernels\): \d of 3 by the median, "
                     r"\d of 3 with the whole 95 % interval", text), text


def test_train_step_bench_quick_times_every_mode_and_prints_its_ratio_to_fp32(tmp_path):
    text = _run("train_step.py", ["--quick", "--contexts", "20"], tmp_path)
    ratio = r"([\d.]+) \(([\d.]+)-([\d.]+)\)"
    rows = re.findall(rf"^\| 1 \| (\w+) .* \| 20 \| ([\d.]+) \| ([\d.]+) \| - \| ([\d.]+) \| {ratio} \| - \| {ratio} \| - \|$",
                      text, re.M)
    assert [r[0] for r in rows] == ["random", "language", "image"], text
    for _, fp32, bf16, cpu, *cells in rows:
        for ms, (value, low, high) in ((bf16, cells[:3]), (cpu, cells[3:])):
            value, low, high = float(value), float(low), float(high)
            assert low <= value <= high, text
            # 6 rounds: the interval is [min, max] of the per-round ratios, which holds the ratio of
            # the medians, up to the printed digits (bounds to 0.01, milliseconds to 0.1)
            r = float(ms) / float(fp32)
            digits = 0.005 + r * (0.05 / float(ms) + 0.05 / float(fp32))
            assert low - digits <= r <= high + digits, text


def _smoke_grid_size() -> int:
    from dtcore.grid import Selection
    from dtcore.profiles import SMOKE

    return len(Selection.of(SMOKE, ["hopper"], [0]).specs())


@pytest.mark.slow
@pytest.mark.trains
def test_grid_bench_quick_builds_the_grid_cold_and_projects_todays_code_from_its_ratios(tmp_path):
    text = _run("grid.py", ["--envs", "hopper", "--seeds", "0", "--quick", "--tmp", str(tmp_path)], tmp_path)
    m = re.search(r"cold build: (\d+) runs, \d+ s wall .* with 2 workers; runs sum \d+ s, workers busy \d+%", text)
    assert m and int(m.group(1)) == _smoke_grid_size(), text
    line = re.search(r"step time, reference / cpu kernels: (.*)", text).group(1)
    ratios = re.findall(r"(\w+) K=(\d+) ([\d.]+)", line)
    assert {b for b, _, _ in ratios} == {"gpt2", "igpt", "random"} and {k for _, k, _ in ratios} == {"1", "20"}, text
    assert all(float(r) > 0 for _, _, r in ratios)
    plain = re.findall(r"(\w+) K=(\d+) ([\d.]+)", re.search(r"cpu kernels in plain torch / with C: (.*)", text).group(1))
    assert {(b, k) for b, k, _ in plain} == {(b, k) for b, k, _ in ratios} and all(float(r) > 0 for *_, r in plain)
    assert float(re.search(r"evaluation, every target / the reported one: ([\d.]+)", text).group(1)) > 0
    train_s, eval_s, today_s = (float(g) for g in re.search(
        r"runs' training ([\d.]+) s, evaluation ([\d.]+) s; today's code would take ([\d.]+) s", text).groups())
    ratio = float(re.search(r"ratio today / now = ([\d.]+)", text).group(1))
    printed = 0.005 + (0.05 + 0.1 * ratio) / max(train_s + eval_s, 1)   # the ratio to 0.01, the seconds to 0.1
    assert ratio == pytest.approx(today_s / (train_s + eval_s), abs=printed), text
    plain_ratio = float(re.search(r"without the C kernels .* ratio = ([\d.]+)", text).group(1))
    values = [float(r) for *_, r in plain] + [1.0]                            # evaluation is not scaled
    assert min(values) - 0.01 <= plain_ratio <= max(values) + 0.01, text     # a weighted mean of them
    _check_floor(text, train_s, eval_s, workers=2, target_min=30)

    # --built projects and floors the same runs without building them again
    cache = Path(re.search(r"fresh cache (\S+)", text).group(1))
    again = _run("grid.py", ["--envs", "hopper", "--seeds", "0", "--quick", "--built", str(cache)], tmp_path)
    assert re.search(rf"built cache .*: {_smoke_grid_size()} runs; wall taken as their sum / 2 workers", again), again
    assert "cold build" not in again, again
    train_again = float(re.search(r"runs' training ([\d.]+) s", again).group(1))
    assert train_again == train_s, again
    _check_floor(again, train_s, eval_s, workers=2, target_min=30)


def _check_floor(text: str, train_s: float, eval_s: float, workers: int, target_min: float) -> None:
    """The floor lines: training at the matmul rate below what it took, shares and minutes consistent."""
    floor_s, took_s, share = re.search(
        r"floor: the runs' training steps at 100 % of the matmul rate would take ([\d.]+) s \(they took ([\d.]+) s: "
        r"([\d.]+)% of the rate\); .* the build takes at least ([\d.]+) min", text).groups()[:3]
    floor_s, share = float(floor_s), float(share) / 100
    assert float(took_s) == train_s and 0 < floor_s < train_s, text
    rounding = 0.0006 + 0.05 * floor_s / train_s ** 2 + (0.5 / train_s if floor_s >= 10 else 0.0)  # printed digits
    assert share == pytest.approx(floor_s / train_s, abs=rounding), text
    least = float(re.search(r"the build takes at least ([\d.]+) min", text).group(1))
    assert least == pytest.approx((floor_s + eval_s) / workers / 60, abs=0.06 + 1 / 60), text
    need = float(re.search(rf"a {target_min:g}-min build needs the training steps at ([\d.]+)%", text).group(1)) / 100
    assert need == pytest.approx(floor_s / (target_min * 60 * workers - eval_s), abs=0.0006), text


@pytest.mark.slow
@pytest.mark.trains
def test_grid_bench_build_only_times_the_cold_build_and_stops(tmp_path):
    text = _run("grid.py", ["--envs", "hopper", "--seeds", "0", "--quick", "--build-only", "--tmp", str(tmp_path)],
                tmp_path)
    assert re.search(r"^runs train on cpu \(", text, re.M), text
    assert re.search(rf"cold build: {_smoke_grid_size()} runs, ", text), text
    assert "step time" not in text and "projected" not in text and "floor" not in text, text


def test_grid_bench_routes_quick_times_the_c_plain_torch_and_builtin_routes_and_projects_the_grid(tmp_path):
    text = _run("grid.py", ["--routes", "--quick", "--envs", "hopper", "--seeds", "0"], tmp_path)
    ratio = r"([\d.]+) \(([\d.]+)-([\d.]+)\)"
    rows = re.findall(rf"^\| (\w+) .* \| (\d+) \| (\d+) \| " + r" \| ".join([r"[\d.]+"] * 5 + [ratio] * 4) + r" \|$",
                      text, re.M)
    assert {(r[0], r[1]) for r in rows} == {("language", "1"), ("language", "20"), ("image", "20"),
                                            ("random", "1"), ("random", "20")}, text
    for row in rows:
        cells = [float(c) for c in row[3:]]
        assert all(cells[i + 1] <= cells[i] <= cells[i + 2] for i in range(0, 12, 3)), text
    grid = dict(re.findall(r"grid, (.+?) / a: ([\d.]+) \(", text))
    assert set(grid) == {"reference", "b: same in plain torch", "c: builtin eager", "c: builtin sdpa"}, text
    minutes = dict(re.findall(r"([abc]: [\w ]+?|reference) ([\d.]+) min", text))
    assert len(minutes) == 5, text
    m = re.search(r"best built-in route on the grid: (c: builtin \w+); C kernels' gain over it " + ratio
                  + r": (keep|delete|undecided) by the 1.25x rule", text)
    assert m, text
    assert float(m.group(3)) <= float(m.group(2)) <= float(m.group(4))
    assert (m.group(5) == "keep") == (float(m.group(3)) >= 1.25)


def test_learning_curves_reads_run_logs_and_applies_the_length_rule(tmp_path):
    # Two seeds of one body on the documented random-body curve (docs/profiles.md): the rule's 7.
    import json
    from tests.test_convergence import DOC_ERROR, DOC_RETURN
    for seed in (0, 1):
        epochs = [{"epoch": i + 1, "action_error": e, "eval": {"targets": [{"score_paper": r / 30 + seed}]}}
                  for i, (e, r) in enumerate(zip(DOC_ERROR, DOC_RETURN))]
        cfg = {"model": {"backbone": "random"}, "train": {"context": 20, "seed": seed}}
        (tmp_path / f"run{seed}").mkdir()
        (tmp_path / f"run{seed}" / "log.json").write_text(json.dumps({"config": cfg, "epochs": epochs}))
    text = _run("learning_curves.py", ["--runs", str(tmp_path), "--figures", str(tmp_path / "fig")], tmp_path)
    assert "random K20: seeds [0, 1], 14 epochs in common" in text, text
    assert "rule on the seed mean: 7; per seed: [7, 7]" in text, text
    assert "fine-tuning length (longest over bodies): 7 epochs, trained 11" in text, text
    assert "rule   (11 epochs): best-epoch" in text, text
    assert (tmp_path / "fig" / "learning-curves-hopper-mini.png").stat().st_size > 0


def _claims_json(path: Path, runs: list[str], bh: dict, needs: list) -> Path:
    import json
    rows = [{"claim_id": f"c{i}", "corrected": "inconclusive", "outcome": "inconclusive", "seeds_needed": s}
            for i, s in enumerate(needs)]
    tally = {"holds": 0, "contradicted": 0, "negligible": 0, "inconclusive": len(needs), **bh}
    report = {"created": "2026-12-06T08:00:00+00:00",
              "headline": {"rows": rows, "tally": tally, "tally_bh": tally, "tally_holm": tally},
              "provenance": {"grid": "envs=hopper", **{f"run {r}": {} for r in runs}}}
    path.write_text(json.dumps(report))
    return path


def test_decided_per_cpu_hour_counts_each_recipe_s_runs_and_analyses(tmp_path):
    # Two recipes on one cache: the old reads run a (2 epochs of 900 s), the new run b (1 epoch of
    # 3600 s) and an analysis of b (1800 s on 2 threads); the old decides 2, the new 6.
    import json
    cache = tmp_path / "cache"
    for name, times in (("a", [900, 900]), ("b", [3600])):
        (cache / "runs" / name).mkdir(parents=True)
        (cache / "runs" / name / "log.json").write_text(json.dumps({"epochs": [{"time_total": t} for t in times]}))
    (cache / "analyses" / "mine__1").mkdir(parents=True)
    (cache / "analyses" / "mine__1" / "meta.json").write_text(
        json.dumps({"config": {"run": "b"}, "wall_time_s": 1800, "torch_threads": 2}))
    (cache / "analyses" / "later__2").mkdir(parents=True)      # computed after the claims run: not its cost
    (cache / "analyses" / "later__2" / "meta.json").write_text(json.dumps(
        {"config": {"run": "a"}, "wall_time_s": 3600, "finished_at": "2026-12-06T09:00:00+0000"}))
    old = _claims_json(tmp_path / "old.json", ["a"], {"holds": 1, "contradicted": 1}, [5, 9, None])
    new = _claims_json(tmp_path / "new.json", ["b"], {"contradicted": 5, "negligible": 1}, [30])
    text = _run("decided_per_cpu_hour.py", [f"old={old}", f"new={new}", "--cache", str(cache)], tmp_path)
    old_row = next(line for line in text.splitlines() if line.startswith("old "))
    new_row = next(line for line in text.splitlines() if line.startswith("new "))
    assert old_row.split()[3:8] == ["0.50", "0.00", "2", "2", "2"], old_row       # train h, analyses h, BH, Holm, raw
    assert "4.00" in old_row and "median 7, range 5-9; 1 that no seed count decides" in old_row, old_row
    assert new_row.split()[3:5] == ["1.00", "1.00"] and " 3.00 " in new_row, new_row   # 6 decided / 2 CPU-h
    assert "decided per CPU-hour, new / old: 0.75" in text, text


def test_decided_per_cpu_hour_counts_a_sequential_run_by_its_designs_decisions(tmp_path):
    # The page's own BH says 1 decided; the design decided c0 (holds) at look 1 and c2
    # (contradicted) at look 2, and stopped c1 for futility: 2 decided, c1 the undecided one.
    import json
    cache = tmp_path / "cache"
    (cache / "runs" / "a").mkdir(parents=True)
    (cache / "runs" / "a" / "log.json").write_text(json.dumps({"epochs": [{"time_total": 3600}]}))
    path = _claims_json(tmp_path / "seq.json", ["a"], {"holds": 1}, [3, 12, 4])
    report = json.loads(path.read_text())
    report["headline"]["rows"][0]["env"] = "hopper"
    report["sequential"] = {"design": {"looks": [3, 5, 8]}, "claims": {
        "c0|hopper": {"status": "decided", "outcome": "holds"},
        "c1|": {"status": "futility", "outcome": "inconclusive"},
        "c2|": {"status": "decided", "outcome": "contradicted"}}}
    path.write_text(json.dumps(report))
    text = _run("decided_per_cpu_hour.py", [f"seq={path}", "--cache", str(cache)], tmp_path)
    row = next(line for line in text.splitlines() if line.startswith("seq "))
    assert "(sequential, looks [3, 5, 8])" in row and " 2.00 " in row, row        # 2 decided / 1 CPU-h
    assert "median 12, range 12-12; 0 that no seed count decides" in row, row
