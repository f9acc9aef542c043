"""Frozen configuration of one experiment, one dataclass per concern.

Every field says its meaning, unit and where the paper's value comes from (Table 3 of the paper,
or docs/spec.md §n for what the published code actually ran). Derived values
come from functions (:func:`adam_eps`, :func:`config_hash`, :func:`run_id`), never from mutating a
config. ``ExperimentConfig`` is what the cache keys on, so it holds everything that changes a
trained checkpoint and nothing that does not (no paths to outputs, no timestamps).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    backbone: str                        # "gpt2" | "igpt" | "random" (paper §3; docs/spec.md §3.1)
    state_dim: int                       # observation size of the environment
    act_dim: int                         # action size of the environment
    weights: str | None = None           # HF hub name or local HF-format dir; None only for "random"
    n_layer: int = 12                    # blocks of the random body (Table 3); pretrained: from weights
    n_embd: int = 768                    # width of the random body (Table 3); pretrained: from weights
    n_head: int = 1                      # heads of the random body (Table 3; docs/spec.md §3.4)
    n_inner: int | None = None           # MLP width of the random body; None = 4 * n_embd (docs/spec.md §3.1)
    activation: str = "relu"             # MLP activation of the random body (docs/spec.md §3.1: ReLU as run)
    max_ep_len: int = 1000               # size of the timestep embedding table (docs/spec.md §3.3)
    embd_pdrop: float = 0.1              # embedding dropout (docs/spec.md §3.1)
    attn_pdrop: float = 0.1              # attention dropout (docs/spec.md §3.1)
    resid_pdrop: float = 0.2             # residual and MLP-output dropout (Table 3 "Dropout 0.2")
    time_embedding: str = "after_ln"     # "after_ln" as run (docs/spec.md §3.3) | "before_ln" (original DT)
    attn_implementation: str = "sdpa"    # "sdpa" for training | "eager" where attention probs are read
    seed: int = 0                        # torch seed at construction: epoch 0 is rebuilt from it (docs/spec.md §3.6)
    block_index: int | None = None       # §5.6.1: replace this block of the random body ...
    block_donor: str | None = None       # ... by the block of a "gpt2" body built from these weights


@dataclass(frozen=True)
class TrainConfig:
    context: int = 20                    # K, timesteps per window (Table 3; 1 in §5.5)
    batch_size: int = 64                 # windows per step (Table 3)
    lr: float = 1e-4                     # AdamW learning rate (Table 3)
    weight_decay: float = 1e-4           # AdamW decoupled weight decay (Table 3; docs/spec.md §4)
    adam_eps: float | None = None        # None = as run: 1e-6 pretrained, 1e-8 random (docs/spec.md §4)
    warmup_steps: int = 5000             # linear warm-up, lr * min((step+1)/warmup, 1) (docs/spec.md §4)
    grad_clip: float | None = 0.25       # global grad-norm clip; None = App. G.3 "no clipping"
    epochs: int = 40                     # epochs (Table 3)
    steps_per_epoch: int = 2500          # optimiser steps per epoch (Table 3)
    drop_lowest_return: bool = True      # exclude the lowest-return trajectory as run (docs/spec.md §2.3)
    heldout_batch_size: int = 512        # windows in the fixed action-error batch (ours, not the paper's)
    seed: int = 666                      # seeds torch, numpy and the batch Generator (paper: 666, 42)
    precision: str = "fp32"              # "fp32" as run | "bf16" autocast with fp32 master weights
    compile: bool = False                # torch.compile the training step where it pays
    sampler: str = "host"                # "host": numpy BatchSampler, batches copied to the device |
                                         # "device": DeviceBatchSampler, dataset and draws on the device
                                         # (same distribution, another stream; added after release,
                                         # see ADDED_FIELDS)
    kernels: str = "reference"           # "reference": the body's modules and torch's AdamW | "cpu": the
                                         # same functions through cheaper CPU kernels, in C, while
                                         # training | "cpu-torch": those in plain torch | "builtin":
                                         # torch's and transformers' own (dtcore.kernels; added after
                                         # release, see ADDED_FIELDS)
    lanes: str = "torch"                 # the "cpu"/"cpu-torch" dropout lanes: "torch": words of torch's
                                         # generator | "splitmix64": a SplitMix64 stream seeded by one
                                         # such word per mask (same distribution, another stream;
                                         # added after release, see ADDED_FIELDS)


@dataclass(frozen=True)
class EvalConfig:
    env: str                             # hopper | halfcheetah | walker2d
    targets: tuple[float, ...]           # return-to-go targets, first is reported (docs/spec.md §5.1)
    episodes_per_target: int = 100       # episodes per target per evaluation (docs/spec.md §5.1)
    max_steps: int = 1000                # episode cap (docs/spec.md §5.1)
    scale: float = 1000.0                # return-to-go scale (docs/spec.md §2.3)
    reset_seed: int = 10_000             # episode i of target j resets with reset_seed + j*1000 + i
    batched: bool = True                 # one vector of envs (ours) | sequential batch-1 (as run)
    every: int = 1                       # evaluate after every `every` epochs (paper: 1)


@dataclass(frozen=True)
class ExperimentConfig:
    env: str                             # hopper | halfcheetah | walker2d
    variant: str                         # "K20" | "K1" | "block{i}" | "noclip" (docs/spec.md §1)
    model: ModelConfig
    train: TrainConfig
    eval: EvalConfig
    dataset: str                         # dataset identity: path or asset key of the medium data
    dataset_sha256: str = ""             # content hash of the dataset file (part of the cache key)
    weights_sha256: str = ""             # content hash of the pretrained weights (part of the key)
    profile: str = "mini"                # smoke | mini | paper

    @property
    def seed(self) -> int:
        return self.train.seed


PROCEDURES = ("fast", "published")


def published_procedure(cfg: ExperimentConfig) -> ExperimentConfig:
    """The same run by the published procedure (the switch back from the fast procedure): fp32, eager attention, no
    ``torch.compile``, batches drawn in numpy on the host, the reference kernels with torch's own
    dropout masks, evaluation one batch-1 episode at a time.

    What is computed (model, loss, optimiser, schedule, clipping, sampling distribution, episode
    seeds) is unchanged; the run id changes with the procedure, since the bits do.
    """
    return dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, attn_implementation="eager"),
        train=dataclasses.replace(cfg.train, precision="fp32", compile=False, sampler="host",
                                  kernels="reference", lanes="torch"),
        eval=dataclasses.replace(cfg.eval, batched=False))


def fast_procedure(cfg: ExperimentConfig, *, compile: bool = False) -> ExperimentConfig:
    """The same run by the fast procedure: bf16 autocast (fp32 master weights and optimiser
    state), SDPA attention, the dataset on the model's device (``sampler="device"``), every episode
    of an evaluation in one batch; ``compile`` adds ``torch.compile``. The paper profile's default."""
    return dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, attn_implementation="sdpa"),
        train=dataclasses.replace(cfg.train, precision="bf16", compile=compile, sampler="device"),
        eval=dataclasses.replace(cfg.eval, batched=True))


def adam_eps(model: ModelConfig, train: TrainConfig) -> float:
    """AdamW epsilon as run: 1e-6 for pretrained bodies, 1e-8 for random init and block
    replacement (docs/spec.md §4), unless ``train.adam_eps`` pins it."""
    if train.adam_eps is not None:
        return train.adam_eps
    return 1e-8 if model.backbone == "random" else 1e-6


# Fields added to a config dataclass after runs were cached, with the default each was added
# with. :func:`config_hash` leaves such a field out while it holds that default, so a config that
# does not use it hashes as it did before the field existed: run ids, resume keys and the run
# caches on users' machines stay valid. Adding a field to a config? Add it here with its default,
# in the same change. Never change or remove an entry (that would re-key every cached run).
ADDED_FIELDS: dict[type, dict[str, Any]] = {
    TrainConfig: {"sampler": "host",     # the fast procedure: batches sampled on the device
                  "kernels": "reference",   # the CPU profiles' dropout, attention, GELU and AdamW kernels
                  "lanes": "torch"},        # the CPU kernels' dropout lanes from a SplitMix64 stream
}


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass (every field, added ones included)."""
    return dataclasses.asdict(cfg)


# Fields removed from a config after release, with the one value every run held: they are hashed
# back in (:func:`hashed_dict`), so removing dead code re-keys no cached run. Never change an entry.
RETIRED_FIELDS: dict[type, dict[str, Any]] = {
    ExperimentConfig: {"extra": {}},   # a free-form dict no code ever set
}


def hashed_dict(cfg: Any) -> dict[str, Any]:
    """:func:`to_dict` without the :data:`ADDED_FIELDS` that hold their added-with default, with
    the :data:`RETIRED_FIELDS` at the value they always held."""
    d = to_dict(cfg)
    _drop_added_defaults(cfg, d)
    for cls, retired in RETIRED_FIELDS.items():
        if isinstance(cfg, cls):
            d.update(retired)
    return d


def _drop_added_defaults(obj: Any, d: Any) -> None:
    """Walk ``obj`` and its ``asdict`` form ``d`` together; delete added fields at their default."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for cls, added in ADDED_FIELDS.items():
            if isinstance(obj, cls):
                for name, default in added.items():
                    if name in d and getattr(obj, name) == default:
                        del d[name]
        for f in dataclasses.fields(obj):
            if f.name in d:
                _drop_added_defaults(getattr(obj, f.name), d[f.name])
    elif isinstance(obj, (list, tuple)) and isinstance(d, (list, tuple)):
        for o, v in zip(obj, d):
            _drop_added_defaults(o, v)
    elif isinstance(obj, dict) and isinstance(d, dict):
        for k, o in obj.items():
            if k in d:
                _drop_added_defaults(o, d[k])


def config_hash(cfg: Any, length: int = 8) -> str:
    """Deterministic hex digest of a config: sha256 of its canonical JSON (sorted keys).

    Fields of :data:`ADDED_FIELDS` at their default are left out (:func:`hashed_dict`), so adding a
    field keeps the hash of every config that leaves it at its default.
    """
    blob = json.dumps(hashed_dict(cfg), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def run_id(cfg: ExperimentConfig) -> str:
    """Cache key that explains itself: ``hopper__gpt2__seed666__K20__<hash8>``."""
    return f"{cfg.env}__{cfg.model.backbone}__seed{cfg.train.seed}__{cfg.variant}__{config_hash(cfg)}"


def override(cfg: ExperimentConfig, *, train: dict[str, Any] | None = None,
             eval: dict[str, Any] | None = None) -> ExperimentConfig:
    """A new config with the named ``train`` / ``eval`` fields changed (the command line's flags);
    ``cfg`` itself is frozen and stays as it was."""
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **(train or {})),
                               eval=dataclasses.replace(cfg.eval, **(eval or {})))


def procedure(cfg: ExperimentConfig, name: str) -> ExperimentConfig:
    """The same run by the procedure ``name`` of :data:`PROCEDURES` (``fast`` keeps ``compile``)."""
    if name == "published":
        return published_procedure(cfg)
    if name == "fast":
        return fast_procedure(cfg, compile=cfg.train.compile)
    raise ValueError(f"procedure must be one of {', '.join(PROCEDURES)}, got {name!r}")
