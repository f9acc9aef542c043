"""train(): the published optimiser, schedule and loss (spec §4), seeding, checkpoints and resume."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from dtcore.config import EvalConfig, ExperimentConfig, ModelConfig, TrainConfig
from dtcore.data import OfflineDataset
from dtcore.samplers import BatchSampler
from dtcore.model import build_model
from dtcore.checkpoints import load as load_checkpoint
from dtcore.train import make_optimizer, make_scheduler, train, train_step

S, A = 5, 2


def synthetic_dataset(n: int = 6, seed: int = 0) -> OfflineDataset:
    """Short trajectories of random states whose actions are a fixed function of the state."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((S, A))
    trajectories = []
    for i in range(n):
        T = 20 + 4 * i
        obs = rng.standard_normal((T + 1, S)).astype(np.float32)
        trajectories.append({
            "observations": obs[:-1], "next_observations": obs[1:],
            "actions": np.tanh(obs[:-1] @ W).astype(np.float32),
            "rewards": rng.uniform(0, 1 + i, T).astype(np.float32),
            "terminals": np.zeros(T, dtype=bool), "timeouts": np.zeros(T, dtype=bool)})
    return OfflineDataset(trajectories=trajectories, source="synthetic", label="D4RL-like substitute")


DATA = synthetic_dataset()


def make_cfg(seed: int = 0, epochs: int = 3, steps: int = 8, backbone: str = "random", **train) -> ExperimentConfig:
    model = ModelConfig(backbone=backbone, state_dim=S, act_dim=A, n_layer=1, n_embd=16, n_head=1, seed=seed)
    train = {"lr": 1e-3, **train}
    tc = TrainConfig(context=4, batch_size=8, warmup_steps=5, epochs=epochs, steps_per_epoch=steps,
                     heldout_batch_size=32, seed=seed, **train)
    return ExperimentConfig(env="hopper", variant="K20", model=model, train=tc,
                            eval=EvalConfig(env="hopper", targets=(3600.0,)), dataset="synthetic")


def run(cfg: ExperimentConfig, run_dir=None, **kwargs):
    return train(build_model(cfg.model), DATA, cfg, run_dir=run_dir, progress=False, **kwargs)


def assert_same_bits(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def optimizer_tensors(state: dict) -> dict:
    return {f"{i}.{k}": v for i, s in state["optimizer"]["state"].items() for k, v in s.items()}


def test_the_action_error_falls_on_a_learnable_synthetic_dataset():
    result = run(make_cfg(epochs=3, steps=30))
    errors = [e.action_error for e in result.epochs]
    assert errors[-1] < 0.5 * result.initial_action_error, (result.initial_action_error, errors)
    assert result.epochs[-1].train_loss_mean < result.epochs[0].train_loss_mean


def test_epoch_zero_is_saved_before_the_first_step_and_every_epoch_after(tmp_path):
    cfg = make_cfg(epochs=2, steps=4)
    result = run(cfg, tmp_path)
    assert sorted(result.checkpoints) == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["epoch_000.pt", "epoch_001.pt", "epoch_002.pt"]
    first = torch.load(tmp_path / "epoch_000.pt", weights_only=True)  # plain types and tensors only
    assert first["epoch"] == 0 and first["step"] == 0 and first["optimizer"]["state"] == {}
    assert_same_bits(first["model"], build_model(cfg.model).state_dict())
    last = load_checkpoint(result.checkpoints[2])
    assert last["step"] == 8 and last["scheduler"]["last_epoch"] == 8
    assert set(last) >= {"model", "optimizer", "scheduler", "sampler", "rng", "config", "epochs"}
    log = json.loads((tmp_path / "log.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2]
    assert set(log["epochs"][0]) >= {"train_loss_mean", "train_loss_std", "action_error",
                                     "last_batch_action_error", "eval", "time_training", "time_evaluation"}
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_same_seed_gives_bit_identical_checkpoints_and_another_seed_does_not(tmp_path):
    a = load_checkpoint(run(make_cfg(seed=0), tmp_path / "a").checkpoints[3])
    b = load_checkpoint(run(make_cfg(seed=0), tmp_path / "b").checkpoints[3])
    c = load_checkpoint(run(make_cfg(seed=1), tmp_path / "c").checkpoints[3])
    assert_same_bits(a["model"], b["model"])
    assert_same_bits(optimizer_tensors(a), optimizer_tensors(b))
    assert [e["train_loss_mean"] for e in a["epochs"]] == [e["train_loss_mean"] for e in b["epochs"]]
    assert not torch.equal(a["model"]["embed_state.weight"], c["model"]["embed_state.weight"])


def test_a_resumed_run_ends_with_the_bits_of_an_uninterrupted_one(tmp_path):
    full = load_checkpoint(run(make_cfg(epochs=3), tmp_path / "full").checkpoints[3])
    # Trained 2 epochs, then extended to 3 from the checkpoint.
    run(make_cfg(epochs=2), tmp_path / "ext")
    extended = run(make_cfg(epochs=3), tmp_path / "ext")
    # Interrupted after epoch 2 of a 3-epoch run, then resumed.
    run(make_cfg(epochs=3), tmp_path / "cut", until_epoch=2)
    (tmp_path / "cut" / "epoch_003.pt").unlink(missing_ok=True)
    resumed = run(make_cfg(epochs=3), tmp_path / "cut")
    for result in (extended, resumed):
        assert [e.epoch for e in result.epochs] == [1, 2, 3]
        last = load_checkpoint(result.checkpoints[3])
        assert_same_bits(last["model"], full["model"])
        assert_same_bits(optimizer_tensors(last), optimizer_tensors(full))
        assert last["sampler"] == full["sampler"]
        assert [e.train_loss_mean for e in result.epochs] == [e["train_loss_mean"] for e in full["epochs"]]


def test_resuming_a_run_of_another_config_is_refused(tmp_path):
    run(make_cfg(epochs=1, steps=2), tmp_path)
    with pytest.raises(ValueError, match="holds a run of another config"):
        run(make_cfg(epochs=1, steps=2, lr=5e-4), tmp_path)


def test_evaluation_is_called_each_epoch_in_eval_mode_and_does_not_change_what_is_trained(tmp_path):
    calls = []

    def evaluate_fn(model, epoch):
        calls.append((epoch, model.training))
        torch.rand(100), np.random.rand(3)  # consumes RNG: training must not see it
        return {"3600.0": {"returns": np.array([1.5, 2.5])}}

    with_eval = run(make_cfg(), tmp_path / "e", evaluate_fn=evaluate_fn)
    without = run(make_cfg(), tmp_path / "n")
    assert calls == [(1, False), (2, False), (3, False)]
    assert with_eval.epochs[0].eval == {"3600.0": {"returns": [1.5, 2.5]}}
    assert_same_bits(load_checkpoint(with_eval.checkpoints[3])["model"],
                     load_checkpoint(without.checkpoints[3])["model"])


def test_the_optimizer_and_warmup_are_the_published_ones():
    random_cfg = make_cfg()
    model = build_model(random_cfg.model)
    opt = make_optimizer(model, random_cfg)
    group = opt.param_groups[0]
    assert (group["eps"], group["weight_decay"], group["betas"]) == (1e-8, 1e-4, (0.9, 0.999))
    assert isinstance(opt, torch.optim.AdamW) and len(opt.param_groups) == 1
    assert len(group["params"]) == sum(1 for p in model.parameters() if p.requires_grad)
    pretrained = dataclasses.replace(random_cfg, model=dataclasses.replace(random_cfg.model, backbone="gpt2"))
    assert make_optimizer(model, pretrained).param_groups[0]["eps"] == 1e-6
    sched = make_scheduler(opt, warmup_steps=4)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1e-3 * m for m in (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)])


@pytest.mark.parametrize("clip", [0.01, None])
def test_gradients_are_clipped_to_the_configured_global_norm(clip):
    cfg = make_cfg()
    model = build_model(cfg.model)
    opt = make_optimizer(model, cfg)
    sampler = BatchSampler(DATA, 4, 8, seed=0)
    train_step(model, sampler.sample(), opt, make_scheduler(opt, 5), grad_clip=clip)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    if clip is None:
        assert norm > 0.05
    else:
        assert norm <= clip * (1 + 1e-5)


def test_bf16_autocast_gives_the_fp32_losses_to_bf16_tolerance_with_fp32_master_weights():
    def no_dropout(cfg):
        return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, embd_pdrop=0.0, attn_pdrop=0.0,
                                                                  resid_pdrop=0.0))
    fp32_cfg = no_dropout(make_cfg(epochs=2, steps=6))
    bf16_cfg = no_dropout(make_cfg(epochs=2, steps=6, precision="bf16"))
    model = build_model(bf16_cfg.model)
    fp32 = run(fp32_cfg)
    bf16 = train(model, DATA, bf16_cfg, progress=False)
    for a, b in zip(fp32.epochs, bf16.epochs):
        assert b.train_loss_mean == pytest.approx(a.train_loss_mean, rel=3e-2)
        assert b.action_error == pytest.approx(a.action_error, rel=3e-2)
    assert fp32.epochs[-1].train_loss_mean != bf16.epochs[-1].train_loss_mean  # bf16 did run
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_a_sampler_whose_context_disagrees_with_the_config_is_rejected():
    with pytest.raises(ValueError, match="sampler has context 3"):
        train(build_model(make_cfg().model), BatchSampler(DATA, 3, 8, seed=0), make_cfg(), progress=False)


def test_no_progress_bar_is_drawn_when_stderr_is_not_a_terminal(capsys):
    train(build_model(make_cfg(epochs=1, steps=2).model), DATA, make_cfg(epochs=1, steps=2), progress=True)
    assert "step" not in capsys.readouterr().err


def test_a_fresh_start_removes_the_epoch_files_of_an_earlier_run(tmp_path):
    (tmp_path / "epoch_007.pt").write_bytes(b"an earlier, longer run")
    result = run(make_cfg(epochs=1, steps=2), tmp_path, resume=False)
    assert sorted(p.name for p in tmp_path.glob("epoch_*.pt")) == ["epoch_000.pt", "epoch_001.pt"]
    assert sorted(result.checkpoints) == [0, 1]


def test_keeping_only_the_last_optimizer_state_still_resumes_to_the_same_bits(tmp_path):
    full = load_checkpoint(run(make_cfg(epochs=3), tmp_path / "full").checkpoints[3])
    run(make_cfg(epochs=3), tmp_path / "slim", until_epoch=2, keep_optimizer_state="last")
    assert load_checkpoint(tmp_path / "slim" / "epoch_001.pt")["optimizer"] is None
    assert load_checkpoint(tmp_path / "slim" / "epoch_002.pt")["optimizer"] is not None
    resumed = run(make_cfg(epochs=3), tmp_path / "slim", keep_optimizer_state="last")
    assert_same_bits(load_checkpoint(resumed.checkpoints[3])["model"], full["model"])


# -- the device sampler (issue 9) -----------------------------------------------------------------

def test_training_with_the_device_sampler_saves_checkpoints_and_resumes_to_the_same_bits(tmp_path):
    cfg = make_cfg(epochs=3, steps=4, sampler="device")
    full = run(cfg, tmp_path / "full")
    assert sorted(full.checkpoints) == [0, 1, 2, 3]
    assert all(np.isfinite([e.train_loss_mean, e.train_loss_std, e.action_error, e.last_batch_action_error]).all()
               for e in full.epochs)
    last = load_checkpoint(full.checkpoints[3])
    assert "torch_rng" in last["sampler"] and last["sampler"]["batches_drawn"] == 12
    assert last["config"]["train"]["sampler"] == "device"
    run(cfg, tmp_path / "cut", until_epoch=2)
    resumed = run(cfg, tmp_path / "cut")
    end = load_checkpoint(resumed.checkpoints[3])
    assert_same_bits(end["model"], last["model"])
    assert_same_bits(optimizer_tensors(end), optimizer_tensors(last))
    assert end["sampler"] == last["sampler"]
    assert [e.train_loss_mean for e in resumed.epochs] == [e.train_loss_mean for e in full.epochs]
    # the held-out batch is the host sampler's: the initial action error is the same number
    assert full.initial_action_error == run(make_cfg(epochs=1, steps=1)).initial_action_error


def test_a_host_run_does_not_resume_as_a_device_run(tmp_path):
    run(make_cfg(epochs=1, steps=2), tmp_path)
    with pytest.raises(ValueError, match="holds a run of another config"):
        run(make_cfg(epochs=1, steps=2, sampler="device"), tmp_path)


def test_an_unknown_sampler_or_one_the_config_does_not_name_is_rejected():
    from dtcore.samplers import DeviceBatchSampler

    with pytest.raises(ValueError, match="cfg.train.sampler must be one of"):
        run(make_cfg(epochs=1, steps=1, sampler="gpu"))
    with pytest.raises(ValueError, match="cfg.train.sampler is 'host'"):
        train(build_model(make_cfg().model), DeviceBatchSampler(DATA, 4, 8, seed=0), make_cfg(), progress=False)
    with pytest.raises(ValueError, match="cfg.train.sampler is 'device'"):
        train(build_model(make_cfg().model), BatchSampler(DATA, 4, 8, seed=0), make_cfg(sampler="device"),
              progress=False)
    cfg = make_cfg(epochs=1, steps=1, sampler="device")
    result = train(build_model(cfg.model), DeviceBatchSampler(DATA, 4, 8, seed=0), cfg, progress=False)
    assert result.epochs[0].step == 1


@pytest.mark.parametrize("profile", ["smoke", "mini", "paper"])
def test_the_published_procedure_of_every_profile_is_a_config_train_accepts(profile):
    """``dtcore train --procedure published`` for each profile: the published config passes
    train's checks, and (smoke, mini: cheap) its random body trains two steps on it."""
    from dtcore.config import published_procedure
    from dtcore.profiles import experiment, get_profile
    from dtcore.train import _check_config

    cfg = published_procedure(experiment(get_profile(profile), "hopper", "random", 0, "K20"))
    assert cfg.train.kernels == "reference"
    _check_config(cfg, "all")
    if profile == "paper":
        return                                  # a 12 x 768 body: the checks alone
    small = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, state_dim=S, act_dim=A),
                                train=dataclasses.replace(cfg.train, epochs=1, steps_per_epoch=2, heldout_batch_size=16))
    result = run(small)
    assert [e.step for e in result.epochs] == [2]
