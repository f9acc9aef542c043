"""The pytest wiring and the one seeding function everything uses."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dtcore.seeding import seed_everything

ROOT = Path(__file__).resolve().parent.parent


def _draws() -> tuple[float, float, list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_seed_everything_repeats_random_numpy_and_torch_draws():
    seed_everything(123)
    first = _draws()
    seed_everything(123)
    assert _draws() == first
    seed_everything(124)
    assert _draws() != first


def test_seed_everything_returns_a_seeded_generator():
    a = seed_everything(7).standard_normal(4)
    b = seed_everything(7).standard_normal(4)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed"):
        seed_everything(bad)


def _pytest(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_markers_are_registered():
    out = _pytest("--markers").stdout
    for marker in ("@pytest.mark.claim(id, section)", "@pytest.mark.trains", "@pytest.mark.slow",
                   "@pytest.mark.gpu", "@pytest.mark.slurm"):
        assert marker in out


def test_unknown_marker_is_an_error(tmp_path):
    (tmp_path / "test_typo.py").write_text("import pytest\n\n@pytest.mark.clam\ndef test_x():\n    pass\n")
    res = _pytest(str(tmp_path / "test_typo.py"), "-p", "no:cacheprovider", f"--rootdir={ROOT}",
                  "-c", str(ROOT / "pytest.ini"))
    assert res.returncode != 0
    assert "'clam' not found in `markers`" in res.stdout + res.stderr


def test_collecting_the_claims_for_hopper_works():
    res = _pytest("claims/", "--collect-only", "-q", "-k", "hopper", "-p", "no:cacheprovider")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "hopper-seed" in res.stdout and "tests collected" in res.stdout


def test_report_header_names_profile_grid_device_and_cache():
    res = _pytest("tests/test_foundation.py", "--collect-only", "--profile", "smoke",
                  "--envs", "hopper", "-p", "no:cacheprovider")
    out = res.stdout
    assert "dtclaims profile: smoke" in out and "verdicts meaningless" in out
    assert "envs=hopper" in out
    assert "dtclaims device: cpu" in out
    assert "dtclaims cache:" in out
