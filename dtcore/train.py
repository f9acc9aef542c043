"""Training of the paper's Decision Transformers (docs/spec.md §4), seeded, checkpointed and resumable.

As run (``experiment.py``, ``seq_trainer.py``): AdamW over all parameters (lr 1e-4, weight decay
1e-4, betas 0.9/0.999, eps 1e-6 for pretrained bodies and 1e-8 for random init:
:func:`dtcore.config.adam_eps`), LambdaLR warm-up ``min((step+1)/warmup, 1)`` stepped after every
optimiser step, masked action MSE (:func:`dtcore.model.action_loss`), global grad-norm clipping at
``grad_clip`` (None = App. G.3 "no clipping"), ``epochs x steps_per_epoch`` steps of batch B and
context K. Per epoch we log the train-loss mean/std, the action error on a fixed held-out batch
(eval mode), the published last-batch ``training/action_error`` (the loss of the epoch's last
step, train mode), the evaluation returns and wall times.

Ours, on purpose: every RNG is seeded (the published run seeded torch only, docs/spec.md §8.9); the
batch stream comes from the sampler's own Generator; ``epoch_000.pt`` is saved before the first
step (the paper rebuilt epoch 0 from the seed); every checkpoint holds model, optimiser,
scheduler, sampler and RNG states and is written atomically; ``resume=True`` continues from the
last complete epoch with the same bits as an uninterrupted run; evaluation runs under a forked
RNG, so the trained weights do not depend on whether or how often evaluation ran.

Fast procedure (the same model, loss, optimiser, schedule, clipping and sampling
distribution): ``precision="bf16"`` autocasts forward and loss to bfloat16 with fp32 master
weights and fp32 optimiser state; fused AdamW on CUDA; SDPA attention; ``compile=True`` wraps the
forward in ``torch.compile``; ``sampler="device"`` holds the dataset on the model's device and
draws every batch there (:class:`dtcore.samplers.DeviceBatchSampler`: the same windows and sampling
distribution, another random stream), while ``sampler="host"`` (default) draws with the numpy
:class:`dtcore.samplers.BatchSampler` and moves each batch to the device from pinned memory without
blocking; losses stay in a device tensor read once per epoch, so the step loop never waits for
the device (the progress bar, when shown on a terminal, reads the loss about once a second).

Kernels: ``kernels="cpu"`` (the CPU profiles) trains through cheaper CPU kernels of the same
functions (:mod:`dtcore.kernels`): the body's dropout masks cut from 16-bit lanes of 64-bit words
(``lanes``: torch's generator, or a SplitMix64 stream it seeds), attention with those masks, the
GELUs in one pass each way (these three in C kernels, required: without a compiler the run
stops), and fused AdamW; ``"cpu-torch"`` the same in plain torch (another run id); ``"builtin"``
fused AdamW, ``gelu_pytorch_tanh``, eager attention and torch's own dropout. The body is restored when training ends, so what is saved and analysed is the reference
module tree.

Threads: on the CPU a model under ``SINGLE_THREAD_PARAMS`` parameters (the
smoke and mini bodies) trains with one intra-op thread, restored afterwards. Measured on the
shared 2-core machine with another job at 200 % CPU, two OpenMP threads made each step of the
smoke model 3 to 100 times slower than one (the threads wait on each other at every op whenever
the other job holds a core), at random: that, not anything restored on resume, was the "slow
resume" (a resumed and a fresh run started side by side were equally slow, 20-97 s per epoch, and
both took 0.6-1.1 s with one thread; ``bench/resume.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from dtcore import checkpoints, kernels
from dtcore.config import ExperimentConfig, adam_eps, config_hash, run_id, to_dict
from dtcore.data import OfflineDataset
from dtcore.samplers import Batch, BatchSampler, DeviceBatchSampler, WindowSampler
from dtcore.model import action_loss
from dtcore.provenance import atomic_write_bytes, jsonable
from dtcore.seeding import seed_everything

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
HELDOUT_SEED = 1_000_003          # Generator seed of the fixed held-out batch: the same for every run
PRECISIONS = ("fp32", "bf16")
SAMPLERS = {"host": BatchSampler, "device": DeviceBatchSampler}  # TrainConfig.sampler
SINGLE_THREAD_PARAMS = 5_000_000  # CPU models smaller than this train on one thread (module docstring)


@dataclass
class EpochLog:
    epoch: int                        # 1..epochs
    step: int                         # optimiser steps done at the end of the epoch
    train_loss_mean: float            # mean of the epoch's step losses (docs/spec.md §4 train_loss_mean)
    train_loss_std: float             # population std of the step losses (np.std, as logged)
    action_error: float               # masked MSE on the fixed held-out batch, eval mode (ours)
    last_batch_action_error: float    # the epoch's last step loss (published training/action_error)
    lr: float                         # learning rate after the epoch's last scheduler step
    eval: dict[str, Any] | None       # evaluate_fn's result (JSON form), None when not evaluated
    time_training: float              # s, the step loop
    time_evaluation: float            # s, held-out error + evaluate_fn
    time_total: float                 # s, the whole epoch including the checkpoint


@dataclass
class TrainResult:
    epochs: list[EpochLog]
    run_dir: Path | None
    checkpoints: dict[int, Path] = field(default_factory=dict)  # epoch -> epoch_XXX.pt (0 = initial)
    initial_action_error: float | None = None                   # held-out action error before training


# -- optimiser, schedule, one step -----------------------------------------------------------


def make_optimizer(model: nn.Module, cfg: ExperimentConfig) -> torch.optim.AdamW:
    """AdamW as run (docs/spec.md §4): one group, every trainable parameter; fused on CUDA and
    for every kernels but ``"reference"`` (:mod:`dtcore.kernels`)."""
    params = [p for p in model.parameters() if p.requires_grad]  # wte/wpe are frozen and unused
    fused = params[0].device.type == "cuda" or cfg.train.kernels != "reference"
    return torch.optim.AdamW(params, lr=cfg.train.lr, betas=(0.9, 0.999),
                             eps=adam_eps(cfg.model, cfg.train), weight_decay=cfg.train.weight_decay,
                             fused=fused or None)


def make_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up lr * min((step+1)/warmup, 1), no decay (docs/spec.md §4): step 0 uses lr/warmup."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min((step + 1) / warmup_steps, 1.0))


def autocast(device: torch.device, precision: str):
    """bf16 autocast for ``precision="bf16"`` (fp32 weights stay fp32), else a no-op context."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def train_step(model: nn.Module, batch: Batch, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, *, grad_clip: float | None,
               precision: str = "fp32", forward: Callable | None = None) -> torch.Tensor:
    """One optimiser step of docs/spec.md §4; returns the detached loss (no host synchronisation).

    ``forward`` is the callable run on the batch (``torch.compile(model)`` on the fast path).
    """
    device = batch.states.device
    with autocast(device, precision):
        loss = action_loss(forward if forward is not None else model, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    scheduler.step()
    return loss.detach()


@torch.no_grad()
def heldout_action_error(model: nn.Module, batch: Batch) -> float:
    """Masked action MSE of ``batch`` in eval mode, fp32; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        return float(action_loss(model, batch))
    finally:
        model.train(was_training)


# -- train ------------------------------------------------------------------------------------


@dataclass
class _Run:
    """Everything that changes while training, and what a checkpoint restores."""

    model: nn.Module
    cfg: ExperimentConfig
    sampler: WindowSampler
    optimizer: torch.optim.AdamW
    scheduler: torch.optim.lr_scheduler.LambdaLR
    device: torch.device
    heldout: Batch
    run_dir: Path | None
    logs: list[EpochLog] = field(default_factory=list)
    checkpoints: dict[int, Path] = field(default_factory=dict)
    initial_action_error: float | None = None
    step: int = 0


def train(model: nn.Module, data: WindowSampler | OfflineDataset, cfg: ExperimentConfig, *,
          run_dir: str | os.PathLike | None = None, resume: bool = True,
          evaluate_fn: Callable[[nn.Module, int], Any] | None = None, progress: bool = True,
          until_epoch: int | None = None, keep_optimizer_state: str = "all") -> TrainResult:
    """Train ``model`` on ``data`` for ``cfg.train.epochs x steps_per_epoch`` steps (docs/spec.md §4).

    ``run_dir``: where ``epoch_XXX.pt`` and ``log.json`` go (None: nothing is written). With
    ``resume=True`` an existing run of the same config there continues after its last complete
    epoch. ``evaluate_fn(model, epoch)`` runs after every ``cfg.eval.every`` epochs (and the last)
    in eval mode; its result goes into the log. ``until_epoch`` stops after that epoch, as an
    interruption would. ``keep_optimizer_state="last"`` strips the optimiser state from the
    previous checkpoint once the next one is written (for paper-size runs on a small disk).
    Each checkpoint's sha256 goes into ``run_dir/manifest.json`` as soon as the file is in place
    (also when a stripped one is rewritten): :mod:`dtcore.checkpoints`.

    ``data``: an :class:`OfflineDataset` (the sampler of ``cfg.train.sampler`` is built from it:
    ``"host"`` a :class:`BatchSampler`, ``"device"`` a :class:`DeviceBatchSampler` on the model's
    device) or a sampler of that kind whose context and batch size match the config.
    """
    _check_config(cfg, keep_optimizer_state)
    body = getattr(model, "transformer", None)
    if cfg.train.kernels != "reference" and body is None:
        raise ValueError(f"cfg.train.kernels={cfg.train.kernels!r} swaps kernels of a GPT-2 body; "
                         f"{type(model).__name__} has no .transformer")
    with _intra_op_threads(model), kernels.swapped(body, cfg.train.kernels, lanes=cfg.train.lanes):
        return _train(model, data, cfg, run_dir=run_dir, resume=resume, evaluate_fn=evaluate_fn,
                      progress=progress, until_epoch=until_epoch, keep_optimizer_state=keep_optimizer_state)


@contextlib.contextmanager
def _intra_op_threads(model: nn.Module):
    """One torch intra-op thread while a small model trains on the CPU (see the module docstring)."""
    params = sum(p.numel() for p in model.parameters())
    before = torch.get_num_threads()
    small_cpu = next(model.parameters()).device.type == "cpu" and params < SINGLE_THREAD_PARAMS
    if small_cpu and before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small_cpu and before != 1:
            torch.set_num_threads(before)


def _train(model: nn.Module, data: WindowSampler | OfflineDataset, cfg: ExperimentConfig, *,
           run_dir, resume: bool, evaluate_fn, progress: bool, until_epoch: int | None,
           keep_optimizer_state: str) -> TrainResult:
    tc = cfg.train
    device = next(model.parameters()).device
    seed_everything(tc.seed)
    sampler = _sampler(data, cfg, device)
    optimizer = make_optimizer(model, cfg)
    run = _Run(model=model, cfg=cfg, sampler=sampler, optimizer=optimizer,
               scheduler=make_scheduler(optimizer, tc.warmup_steps), device=device,
               heldout=_to_device(sampler.fixed_batch(tc.heldout_batch_size, HELDOUT_SEED), device),
               run_dir=Path(run_dir) if run_dir is not None else None)
    model.train()
    start = _resume(run) if (run.run_dir is not None and resume) else None
    if start is None:
        start = 0
        _clear_checkpoints(run.run_dir)
        run.initial_action_error = heldout_action_error(model, run.heldout)
        _save(run, 0)
    forward = torch.compile(model) if tc.compile else model
    last = tc.epochs if until_epoch is None else min(until_epoch, tc.epochs)
    for epoch in range(start + 1, last + 1):
        run.logs.append(_epoch(run, epoch, forward, evaluate_fn, progress))
        _save(run, epoch, keep_optimizer_state)
    if run.run_dir is not None and start >= last:
        _write_log(run)   # resumed at its last epoch (epochs adopted from a longer run): the log is its own
    return TrainResult(epochs=list(run.logs), run_dir=run.run_dir, checkpoints=dict(run.checkpoints),
                       initial_action_error=run.initial_action_error)


def _check_config(cfg: ExperimentConfig, keep_optimizer_state: str) -> None:
    tc = cfg.train
    if tc.precision not in PRECISIONS:
        raise ValueError(f"cfg.train.precision must be one of {PRECISIONS}, got {tc.precision!r}")
    for name in ("epochs", "steps_per_epoch", "warmup_steps", "batch_size", "context", "heldout_batch_size"):
        if getattr(tc, name) < 1:
            raise ValueError(f"cfg.train.{name} must be >= 1, got {getattr(tc, name)}")
    if tc.kernels not in kernels.KERNELS:
        raise ValueError(f"cfg.train.kernels must be one of {kernels.KERNELS}, got {tc.kernels!r}")
    if tc.lanes not in kernels.LANE_SOURCES:
        raise ValueError(f"cfg.train.lanes must be one of {kernels.LANE_SOURCES}, got {tc.lanes!r}")
    if tc.lanes != "torch" and tc.kernels not in kernels.LANE_KERNELS:
        raise ValueError(f"cfg.train.lanes={tc.lanes!r} is where the cpu kernels' dropout lanes come from; "
                         f"with kernels={tc.kernels!r} set lanes='torch' or kernels='cpu' or 'cpu-torch'")
    if tc.sampler not in SAMPLERS:
        raise ValueError(f"cfg.train.sampler must be one of {tuple(SAMPLERS)}, got {tc.sampler!r}")
    if tc.grad_clip is not None and tc.grad_clip <= 0:
        raise ValueError(f"cfg.train.grad_clip must be positive or None, got {tc.grad_clip}")
    if keep_optimizer_state not in ("all", "last"):
        raise ValueError(f"keep_optimizer_state must be 'all' or 'last', got {keep_optimizer_state!r}")


def _sampler(data: WindowSampler | OfflineDataset, cfg: ExperimentConfig, device: torch.device) -> WindowSampler:
    tc = cfg.train
    kind = SAMPLERS[tc.sampler]
    if isinstance(data, OfflineDataset):
        # host: drawn in numpy, _to_device moves each batch from pinned memory without blocking;
        # device: the dataset lives on the model's device and batches are drawn there.
        return kind(data, tc.context, tc.batch_size, tc.seed, scale=cfg.eval.scale,
                    drop_lowest_return=tc.drop_lowest_return, max_ep_len=cfg.model.max_ep_len,
                    device=device if tc.sampler == "device" else "cpu")
    if not isinstance(data, WindowSampler):
        raise ValueError(f"data must be a BatchSampler, a DeviceBatchSampler or an OfflineDataset, "
                         f"got {type(data).__name__}")
    if not isinstance(data, kind):
        raise ValueError(f"data is a {type(data).__name__} but cfg.train.sampler is {tc.sampler!r} "
                         f"(a {kind.__name__}): the config must name the sampler that trains")
    if isinstance(data, DeviceBatchSampler) and not _same_device(data.device, device):
        raise ValueError(f"data: DeviceBatchSampler on {data.device}, the model is on {device}")
    if (data.context, data.batch_size) != (tc.context, tc.batch_size):
        raise ValueError(f"data: sampler has context {data.context}, batch {data.batch_size}; "
                         f"cfg.train says context {tc.context}, batch {tc.batch_size}")
    return data


def _same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:<current>`` are the same device."""
    def index(d: torch.device) -> int | None:
        return torch.cuda.current_device() if d.type == "cuda" and d.index is None else d.index
    return a.type == b.type and index(a) == index(b)


def _to_device(batch: Batch, device: torch.device) -> Batch:
    if batch.states.device == device:
        return batch
    if device.type == "cuda" and batch.states.device.type == "cpu":
        batch = Batch(**{k: getattr(batch, k).pin_memory() for k in batch.__dataclass_fields__})
        return batch.to(device, non_blocking=True)
    return batch.to(device)


def _epoch(run: _Run, epoch: int, forward: Callable, evaluate_fn, progress: bool) -> EpochLog:
    tc = run.cfg.train
    t0 = time.perf_counter()
    run.model.train()
    losses = torch.empty(tc.steps_per_epoch, device=run.device)                  # [steps] on device
    show = progress and sys.stderr.isatty()
    bar = tqdm(range(tc.steps_per_epoch), desc=f"epoch {epoch}/{tc.epochs}", unit="step",
               disable=not show, leave=False, dynamic_ncols=True)
    shown = time.monotonic()
    for i in bar:
        batch = _to_device(run.sampler.sample(), run.device)
        losses[i] = train_step(run.model, batch, run.optimizer, run.scheduler, grad_clip=tc.grad_clip,
                               precision=tc.precision, forward=forward)
        if show and time.monotonic() - shown > 1.0:  # one read a second, only on a terminal
            bar.set_postfix(loss=f"{losses[i].item():.4f}")
            shown = time.monotonic()
    bar.close()
    host = losses.double().cpu().numpy()                                         # the epoch's one sync
    run.step += tc.steps_per_epoch
    t1 = time.perf_counter()
    error = heldout_action_error(run.model, run.heldout)
    result = None
    if evaluate_fn is not None and (epoch % max(run.cfg.eval.every, 1) == 0 or epoch == tc.epochs):
        result = _evaluate(run, evaluate_fn, epoch)
    t2 = time.perf_counter()
    entry = EpochLog(epoch=epoch, step=run.step, train_loss_mean=float(host.mean()),
                     train_loss_std=float(host.std()), action_error=error,
                     last_batch_action_error=float(host[-1]), lr=float(run.scheduler.get_last_lr()[0]),
                     eval=result, time_training=t1 - t0, time_evaluation=t2 - t1, time_total=t2 - t0)
    log.info("epoch %d/%d: loss %.4f +- %.4f, held-out action error %.4f, last batch %.4f (%.1f s)",
             epoch, tc.epochs, entry.train_loss_mean, entry.train_loss_std, error,
             entry.last_batch_action_error, entry.time_total)
    return entry


def _evaluate(run: _Run, evaluate_fn, epoch: int) -> dict[str, Any] | None:
    """``evaluate_fn`` in eval mode under a forked RNG: training never sees what it consumed."""
    devices = [run.device] if run.device.type == "cuda" else []
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=devices):
            run.model.eval()
            result = evaluate_fn(run.model, epoch)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
        run.model.train()
    return None if result is None else jsonable(result)


# -- checkpoints and resume -------------------------------------------------------------------


def resume_key(cfg: ExperimentConfig) -> str:
    """What a resumed run must share with the saved one: the config hash without ``epochs``
    (a run may be extended to more epochs; the schedule does not depend on the count)."""
    return config_hash(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=0)), length=16)


def adopt_epochs(source: str | os.PathLike, run_dir: str | os.PathLike, cfg: ExperimentConfig, upto: int) -> None:
    """Copy epochs 0..``upto`` of the run in ``source`` into ``run_dir`` as checkpoints of ``cfg``
    (its run id and config written into each), so that :func:`train` resumes after ``upto``.

    ``source`` must hold a run of the same resume key: the same config except its epoch count.
    Its first ``upto`` epochs are then the ones ``cfg`` would train, bit for bit (the schedule and
    the sampler do not depend on the count; tests/test_runs.py compares against a fresh run), so a
    run of a longer recipe starts from the shorter cached one, and a shorter one is a prefix of a
    longer one."""
    for epoch in range(upto + 1):
        path = checkpoints.checkpoint_path(source, epoch)
        state = checkpoints.load(path)
        if state.get("resume_key") != resume_key(cfg):
            raise ValueError(f"{path} is a checkpoint of another config (resume key {state.get('resume_key')!r}, "
                             f"this config {resume_key(cfg)!r}): it cannot start this run")
        state["run_id"], state["config"] = run_id(cfg), jsonable(to_dict(cfg))
        checkpoints.save(checkpoints.checkpoint_path(run_dir, epoch), state)


def _rng_state(device: torch.device) -> dict[str, Any]:
    np_state = np.random.get_state(legacy=False)
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {**np_state, "state": {"key": np_state["state"]["key"].tolist(),
                                             "pos": int(np_state["state"]["pos"])}}}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = dict(state["numpy"])
    np_state["state"] = {"key": np.asarray(np_state["state"]["key"], dtype=np.uint32),
                         "pos": np_state["state"]["pos"]}
    np.random.set_state(np_state)
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _save(run: _Run, epoch: int, keep_optimizer_state: str = "all") -> None:
    if run.run_dir is None:
        return
    run.run_dir.mkdir(parents=True, exist_ok=True)
    state = {
        "format": CHECKPOINT_FORMAT, "epoch": epoch, "step": run.step, "run_id": run_id(run.cfg),
        "config": jsonable(to_dict(run.cfg)), "resume_key": resume_key(run.cfg),
        "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(), "sampler": run.sampler.state_dict(),
        "rng": _rng_state(run.device), "epochs": [jsonable(dataclasses.asdict(e)) for e in run.logs],
        "initial_action_error": run.initial_action_error,
    }
    path = checkpoints.save(checkpoints.checkpoint_path(run.run_dir, epoch), state)
    run.checkpoints[epoch] = path
    _write_log(run)
    previous = run.checkpoints.get(epoch - 1)
    if keep_optimizer_state == "last" and previous is not None and previous.exists():
        old = checkpoints.load(previous)
        if old.get("optimizer") is not None:
            old["optimizer"] = None
            checkpoints.save(previous, old)


def _write_log(run: _Run) -> None:
    record = {"run_id": run_id(run.cfg), "config": jsonable(to_dict(run.cfg)), "device": str(run.device),
              "torch": torch.__version__, "c_kernels": kernels.c_kernels() if run.cfg.train.kernels == "cpu" else [],
              "cpu_capability": torch.backends.cpu.get_cpu_capability(),   # AVX2, AVX512: which products rounded
              "initial_action_error": run.initial_action_error,
              "epochs": [jsonable(dataclasses.asdict(e)) for e in run.logs]}
    atomic_write_bytes(run.run_dir / checkpoints.LOG_FILE, json.dumps(record, indent=1, sort_keys=True).encode())


def _clear_checkpoints(run_dir: Path | None) -> None:
    """A fresh start removes the epoch files of an earlier run (and their manifest entries), so no
    stale epoch is resumed later."""
    found = checkpoints.checkpoint_files(run_dir)
    for path in found.values():
        log.warning("fresh start: removing %s of an earlier run", path)
    if found:
        checkpoints.drop_from(run_dir, min(found))


def _resume(run: _Run) -> int | None:
    """Restore the last complete epoch in ``run.run_dir``; return it, or None for a fresh start."""
    found = checkpoints.checkpoint_files(run.run_dir)
    if not found:
        return None
    epoch, path = max(found.items())
    state = checkpoints.load(path, map_location=run.device)
    if state.get("resume_key") != resume_key(run.cfg):
        raise ValueError(f"{run.run_dir} holds a run of another config (resume key {state.get('resume_key')!r}, "
                         f"this config {resume_key(run.cfg)!r}): use another run_dir or resume=False")
    if state.get("optimizer") is None:
        raise ValueError(f"{path} has no optimiser state (stripped): resume needs the last checkpoint intact")
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.sampler.load_state_dict(state["sampler"])
    _set_rng_state(state["rng"], run.device)
    run.step = int(state["step"])
    run.logs = [EpochLog(**e) for e in state["epochs"]]
    run.initial_action_error = state.get("initial_action_error")
    run.checkpoints = dict(found)
    log.info("resuming %s after epoch %d (step %d)", run.run_dir, epoch, run.step)
    return epoch
