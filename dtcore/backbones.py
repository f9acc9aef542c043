"""The three transformer bodies of the paper, as its code actually built them (docs/spec.md §3.1).

``build_backbone(name, ...)`` calls the body's builder, :data:`BUILDERS` ``[name]`` (the registry of
bodies is :mod:`dtcore.bodies`), and returns a HuggingFace :class:`transformers.GPT2Model` for

* ``"gpt2"``: GPT-2 weights and their own config (12 blocks, 12 heads, width 768, gelu_new for
  the hub's ``gpt2``), with the dropout overridden as run: attention 0.1, residual/MLP 0.2,
  embedding 0.1 (docs/spec.md §3.1 "config = GPT2Config.from_pretrained('gpt2'), then attn_pdrop=0.1,
  resid_pdrop=0.2").
* ``"igpt"``: ImageGPT weights carried into the GPT-2 architecture the way the paper's code did
  (it read the ImageGPT config as a ``GPT2Config`` and loaded the weights into the GPT-2 class).
  The result keeps ImageGPT's width, depth, heads and ``quick_gelu``; see
  :func:`imagegpt_to_gpt2_state_dict` for the tensor mapping and why the LayerNorms change meaning.
* ``"random"``: ``GPT2Config(n_layer, n_embd, n_head, n_inner=4*n_embd, activation="relu")`` with
  GPT-2's initialisation (normal(0, 0.02) weights, zero biases, LayerNorm 1/0, every ``c_proj``
  weight re-drawn with std 0.02/sqrt(2 n_layer); docs/spec.md §3.2). Table 3 size: 12 x 768, 1 head.

``weights`` is a hub name (``"gpt2"``, ``"openai/imagegpt-small"``) or a local HF-format
directory (``save_pretrained`` output of a GPT-2 model for ``gpt2``, of an ImageGPT model, e.g.
``ImageGPTForCausalImageModeling``, for ``igpt``). Loading failures are re-raised as
``FileNotFoundError`` / ``ValueError`` naming the path and the fix, without the hub client's
traceback. Every body is returned in train mode (dropout on), however it was built.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from typing import Callable

import torch
from transformers import AutoConfig, GPT2Config, GPT2Model, ImageGPTModel
from transformers.utils import logging as hf_logging

from dtcore.bodies import get_body

logger = logging.getLogger(__name__)

ATTN_IMPLEMENTATIONS = ("sdpa", "eager")

# Our own configs never use a vocabulary (the DT feeds inputs_embeds); vocab_size=1 keeps wte tiny
# and bos/eos 0 silence transformers' warning about token ids outside the vocabulary.
_NO_VOCAB = {"vocab_size": 1, "bos_token_id": 0, "eos_token_id": 0}


def build_backbone(name: str, *, weights: str | os.PathLike | None = None, n_layer: int = 12,
                   n_embd: int = 768, n_head: int = 1, n_inner: int | None = None,
                   activation: str = "relu", embd_pdrop: float = 0.1, attn_pdrop: float = 0.1,
                   resid_pdrop: float = 0.2, attn_implementation: str = "sdpa") -> GPT2Model:
    """The GPT-2 body of one backbone (docs/spec.md §3.1); sizes and activation apply to ``random`` only.

    Pretrained bodies take their sizes, heads and activation from the weights (docs/spec.md §3.4: the
    paper's ``n_head=1`` was ignored for them); dropout applies to all three.
    """
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"attn_implementation must be one of {ATTN_IMPLEMENTATIONS}, got {attn_implementation!r}")
    entry = get_body(name)
    dropout = {"embd_pdrop": embd_pdrop, "attn_pdrop": attn_pdrop, "resid_pdrop": resid_pdrop}
    build = BUILDERS[name]
    if entry.pretrained:
        body = build(_require_weights(name, weights), dropout)
    else:
        body = build(n_layer, n_embd, n_head, n_inner, activation, dropout)
    body.set_attn_implementation(attn_implementation)
    return body.train()


def random_body(n_layer: int, n_embd: int, n_head: int, n_inner: int | None, activation: str,
                 dropout: dict[str, float]) -> GPT2Model:
    for arg, value in (("n_layer", n_layer), ("n_embd", n_embd), ("n_head", n_head)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive int, got {value!r}")
    if n_embd % n_head:
        raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
    config = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head,
                        n_inner=n_inner if n_inner is not None else 4 * n_embd,
                        activation_function=activation, n_positions=1024, **dropout, **_NO_VOCAB)
    return GPT2Model(config)  # GPT-2 initialisation (GPT2PreTrainedModel._init_weights)


def _require_weights(name: str, weights: str | os.PathLike | None) -> str:
    if weights is None or str(weights) == "":
        raise ValueError(f"backbone {name!r} needs weights: a hub name or a local HF-format directory "
                         f"(a profile's Profile.weights[{name!r}], ModelConfig.weights / build_backbone(weights=...))")
    weights = str(weights)
    # A hub name is "name" or "org/name"; anything else (absolute, relative, deeper) is a path.
    looks_like_path = weights.startswith(("/", ".", "~")) or weights.count("/") > 1 or Path(weights).is_dir()
    if looks_like_path and not Path(weights).expanduser().is_dir():
        raise FileNotFoundError(f"no weights directory at {weights!r} for backbone {name!r}: put an HF-format "
                                f"directory there (the output of save_pretrained) or point weights elsewhere")
    return str(Path(weights).expanduser()) if looks_like_path else weights


def _load_error(name: str, weights: str, err: Exception, model_type: str) -> Exception:
    where = (f"the local directory {weights!r}" if Path(weights).is_dir()
             else f"the HF hub name {weights!r} (hub unreachable or not in the local HF cache)")
    return FileNotFoundError(
        f"could not load {name} weights from {where}: {type(err).__name__}: {str(err).splitlines()[0]}. "
        f"Fix: put an HF-format {model_type} directory (save_pretrained "
        f"output with config.json and model.safetensors) at a path and set ModelConfig.weights / "
        f"weights= to it, or run once with network access so the HF cache holds {weights!r}.")


def _read_config(name: str, weights: str, model_type: str):
    try:
        config = AutoConfig.from_pretrained(weights)
    except OSError as err:
        raise _load_error(name, weights, err, model_type) from None
    except ValueError as err:
        raise ValueError(f"{weights!r} holds no config transformers can read for backbone {name!r}: "
                         f"{str(err).splitlines()[0]}") from None
    if config.model_type != model_type:
        raise ValueError(f"weights {weights!r} are of model_type {config.model_type!r}, but backbone "
                         f"{name!r} needs {model_type!r} weights; use the matching backbone or directory")
    return config


def _weight_file(weights: str) -> str:
    """The weight file of a local directory (or the hub name), for messages."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (Path(weights) / name).is_file():
            return str(Path(weights) / name)
    return weights


@contextlib.contextmanager
def _no_progress_bar():
    """transformers' "Loading weights" progress bar off for one load (it is restored after): a
    load is a step of a build or a test, not something to watch in the terminal."""
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def _load_strict(cls, name: str, weights: str, **kwargs):
    """``cls.from_pretrained`` that refuses a partial load: a tensor the model has and the file
    lacks (it would stay randomly initialised), one the file has and the model lacks, or one of
    another shape is a ``ValueError`` naming the file and the tensors. Only a causal-LM head
    (``lm_head.*``), which a body drops by design, may be left over. transformers' own report of
    these is a log line that ``TRANSFORMERS_VERBOSITY=error`` hides."""
    try:  # mismatched sizes are reported in the loading info (below), not raised without names
        with _no_progress_bar():
            model, info = cls.from_pretrained(weights, output_loading_info=True, ignore_mismatched_sizes=True,
                                              **kwargs)
    except OSError as err:
        raise _load_error(name, weights, err, cls.config_class.model_type) from None
    problems = {
        "missing from the file (would be random)": sorted(info.get("missing_keys") or ()),
        "in the file but not in the model": sorted(k for k in info.get("unexpected_keys") or ()
                                                   if not k.startswith("lm_head.")),
        "of another shape": sorted(str(k) for k in info.get("mismatched_keys") or ()),
        "not loaded": list(info.get("error_msgs") or ()),
    }
    found = "; ".join(f"{what}: {', '.join(keys)}" for what, keys in problems.items() if keys)
    if found:
        raise ValueError(f"{name} weights {_weight_file(weights)} do not match the model that "
                         f"{weights}/config.json describes: {found}")
    return model


def gpt2_body(weights: str, dropout: dict[str, float]) -> GPT2Model:
    config = _read_config("gpt2", weights, "gpt2")
    for key, value in dropout.items():
        setattr(config, key, value)  # docs/spec.md §3.1: the pretrained config with the paper's dropout
    return _load_strict(GPT2Model, "gpt2", weights, config=config)


def igpt_body(weights: str, dropout: dict[str, float]) -> GPT2Model:
    icfg = _read_config("igpt", weights, "imagegpt")
    source = _load_strict(ImageGPTModel, "igpt", weights)
    # The ImageGPT config read as a GPT-2 config (docs/spec.md §3.1); the tables keep their sizes.
    config = GPT2Config(
        vocab_size=icfg.vocab_size, n_positions=icfg.n_positions, n_embd=icfg.n_embd,
        n_layer=icfg.n_layer, n_head=icfg.n_head, n_inner=icfg.n_inner,
        activation_function=icfg.activation_function, layer_norm_epsilon=icfg.layer_norm_epsilon,
        initializer_range=icfg.initializer_range, scale_attn_weights=icfg.scale_attn_weights,
        scale_attn_by_inverse_layer_idx=icfg.scale_attn_by_inverse_layer_idx,
        reorder_and_upcast_attn=icfg.reorder_and_upcast_attn, bos_token_id=0, eos_token_id=0, **dropout)
    body = GPT2Model(config)
    state = imagegpt_to_gpt2_state_dict(source.state_dict())
    missing, unexpected = body.load_state_dict(state, strict=False)
    new_biases = set(_layernorm_bias_keys(config.n_layer))
    if unexpected or set(missing) != new_biases:
        raise ValueError(f"ImageGPT weights at {weights!r} do not map onto GPT-2: missing "
                         f"{sorted(set(missing) - new_biases)}, unexpected {sorted(unexpected)}")
    with torch.no_grad():
        for key in new_biases:
            body.get_parameter(key).zero_()  # new LayerNorm biases start at zero (docs/spec.md §3.1)
    logger.info("igpt: loaded %s into GPT-2 (%d blocks, width %d, %d heads, %s); %d LayerNorm biases new at 0",
                weights, config.n_layer, config.n_embd, config.n_head, config.activation_function, len(new_biases))
    return body


def _layernorm_bias_keys(n_layer: int) -> list[str]:
    return [f"h.{i}.{ln}.bias" for i in range(n_layer) for ln in ("ln_1", "ln_2")] + ["ln_f.bias"]


def imagegpt_to_gpt2_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an ImageGPT state dict onto GPT2Model's keys, as the paper's loading did (docs/spec.md §3.1).

    Mapping (ImageGPT key -> GPT-2 key), every tensor copied unchanged:

    * ``transformer.`` prefix (``ImageGPTForCausalImageModeling``) -> stripped; ``lm_head.weight``
      -> dropped (no GPT-2 counterpart in the body).
    * ``wte.weight [vocab 513, d]``, ``wpe.weight [1024, d]`` -> same keys (unused by the DT).
    * ``h.{i}.attn.c_attn.{weight [d, 3d], bias}``, ``h.{i}.attn.c_proj``, ``h.{i}.mlp.c_fc``,
      ``h.{i}.mlp.c_proj`` -> same keys. Both libraries use ``Conv1D`` with weights stored
      ``[in, out]``, so nothing is transposed; the Q|K|V split of ``c_attn`` is the same.
    * ``h.{i}.ln_1.weight``, ``h.{i}.ln_2.weight``, ``ln_f.weight`` -> same keys.
    * GPT-2's ``h.{i}.ln_1.bias``, ``h.{i}.ln_2.bias``, ``ln_f.bias`` have no ImageGPT source: they
      are new and zero.

    The LayerNorms change meaning: ImageGPT normalises x / sqrt(mean(x^2) + eps) * w (RMS, no
    centring, no bias); GPT-2's ``nn.LayerNorm`` computes (x - mean) / sqrt(var + eps) * w + b.
    The carried body is therefore not the function ImageGPT computed (docs/spec.md §3.1, §8.5), exactly as
    in the paper. The causal-mask buffers ``attn.bias`` are non-persistent and not in the dict.
    """
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        key = key.removeprefix("transformer.")
        if key.startswith("lm_head.") or key.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        out[key] = tensor
    return out


# The builder of every body of dtcore.bodies.BODIES: a pretrained body's takes (weights, dropout), a
# random body's (n_layer, n_embd, n_head, n_inner, activation, dropout); each returns a GPT2Model.
BUILDERS: dict[str, Callable[..., GPT2Model]] = {
    "gpt2": gpt2_body,
    "igpt": igpt_body,
    "random": random_body,
}
