"""Recipes of the offline assets: everything that determines an asset's content, so that the
asset cache can key on them (``dtcore.assets.store``). Profiles (``dtcore.profiles``) name them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetRecipe:
    env: str                 # hopper | halfcheetah | walker2d
    agent: str               # "tqc/Hopper-v3_1/Hopper-v3.zip": path under DTCORE_POLICY_DIR
    algo: str                # "tqc" | "sac" | "ars": the SB3 class that loads the agent
    noise: float             # std of the Gaussian added to the deterministic action, then clipped
    steps: int               # transitions to collect (whole episodes until >= steps)
    seed: int = 0            # first reset seed; episode i resets with seed + i; noise Generator seed


@dataclass(frozen=True)
class PretrainRecipe:
    modality: str            # "language" (byte-level GPT-2) | "image" (ImageGPT-style pixel model)
    n_layer: int             # blocks
    n_embd: int              # width
    n_head: int              # heads
    steps: int               # optimiser steps
    batch_size: int          # sequences per step
    seq_len: int             # tokens per sequence (language); image: pixels + start token
    lr: float = 1e-3         # AdamW learning rate (peak, after a 100-step warm-up)
    corpus: str = "stdlib-docstrings"  # language: "stdlib-docstrings" | "english" (registry packages,
                             # dtcore.assets.corpus) | a text file; image: "digits" | "fashion-mnist"
    seed: int = 0
    dropout: float = 0.1     # embd / attn / resid dropout while pretraining
