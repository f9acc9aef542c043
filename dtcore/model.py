"""The Decision Transformer of the paper over a HuggingFace GPT-2 body (docs/spec.md §3.2-3.3, §3.6-3.7, §6.0).

Forward pass, top to bottom, as the published code ran it (``decision_transformer.py``):

1. embed each modality to width d: ``embed_return`` Linear(1, d), ``embed_state`` Linear(S, d),
   ``embed_action`` Linear(A, d), ``embed_timestep`` Embedding(max_ep_len=1000, d) (PyTorch
   default initialisation, not GPT-2's);
2. interleave per timestep in the order **(R_t, s_t, a_t)**: R_1, s_1, a_1, R_2, ... (3K tokens);
3. ``embed_ln`` LayerNorm(d), **then** add the timestep embedding, the same for the 3 tokens of a
   step (``time_embedding="after_ln"``, as published; ``"before_ln"`` adds it to each modality
   before the LayerNorm, the original DT order of Chen et al.);
4. the GPT-2 body (``self.transformer``, a :class:`transformers.GPT2Model`) with the (B, K) mask
   repeated 3 times per step and combined with the causal mask;
5. de-interleave; the action is read from the **state token** s_t (which sees R_<=t, s_<=t,
   a_<t, never a_t) through the tied head  a_hat = tanh(h @ W_embed_action)  with no bias
   (``W_embed_action`` is ``embed_action.weight`` [d, A]). The unused state/return heads of the
   original are not built (they have no parameters and are not in the loss).

Position embeddings: GPT-2's ``wpe`` is **never added**, as in the paper's body (docs/spec.md §3.2). We
swap ``transformer.wpe`` for :class:`NoPositionEmbedding`, an ``nn.Embedding`` that keeps the same
weight (same state-dict key and values, frozen with ``requires_grad=False``) but whose forward
returns a scalar zero, so GPT2Model's ``inputs_embeds + wpe(position_ids)`` adds exactly 0 and no
change of ``wpe.weight`` can reach the output. ``wte`` is unused too (we pass ``inputs_embeds``)
and likewise frozen. The only positional signal is the per-timestep embedding.

The attention mask is built here as a 4-D [B, 1, 3K, 3K] mask (boolean for SDPA, additive for
eager; HF passes a 4-D mask through unchanged), so the forward never reads mask values on the
host (no device synchronisation). A query may see key j <= i when j is a real token; a padded
query sees only itself, which keeps its softmax finite. Real tokens never attend to padding, so
their outputs are those of the published -10000 additive mask.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable

import torch
from torch import nn
from transformers import GPT2Model

from dtcore.backbones import build_backbone
from dtcore.bodies import BLOCK_DONOR
from dtcore.config import ModelConfig

TIME_EMBEDDINGS = ("after_ln", "before_ln")

# The 9 hooked layers per block of the published activation analysis, in its order (docs/spec.md §6.0).
HOOKED_LAYERS = ("ln_1", "attn.c_attn", "attn.c_proj", "attn.resid_dropout", "ln_2",
                 "mlp.c_fc", "mlp.c_proj", "mlp.act", "mlp.dropout")


class NoPositionEmbedding(nn.Embedding):
    """GPT-2's ``wpe`` table kept as a frozen parameter that contributes nothing (docs/spec.md §3.2)."""

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.weight.new_zeros(())  # broadcasts: inputs_embeds + 0 == inputs_embeds


def disable_position_embeddings(body: GPT2Model) -> None:
    """Replace ``body.wpe`` by :class:`NoPositionEmbedding` over the same weight; freeze wpe and wte."""
    old = body.wpe
    if not isinstance(old, NoPositionEmbedding):
        new = NoPositionEmbedding(old.num_embeddings, old.embedding_dim, device=old.weight.device,
                                  dtype=old.weight.dtype)
        new.weight = old.weight  # the same Parameter object: key, values and storage unchanged
        body.wpe = new
    body.wpe.weight.requires_grad_(False)
    body.wte.weight.requires_grad_(False)


class DecisionTransformer(nn.Module):
    """Decision Transformer over ``build_backbone(cfg.backbone, ...)``; see the module docstring.

    Construction does not seed; :func:`build_model` does (docs/spec.md §3.6).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.time_embedding not in TIME_EMBEDDINGS:
            raise ValueError(f"cfg.time_embedding must be one of {TIME_EMBEDDINGS}, got {cfg.time_embedding!r}")
        if cfg.state_dim < 1 or cfg.act_dim < 1:
            raise ValueError(f"cfg.state_dim and cfg.act_dim must be >= 1, got {cfg.state_dim}, {cfg.act_dim}")
        self.cfg = cfg
        # Same construction order as the published __init__: body first, then the wrapper layers.
        self.transformer = build_backbone(
            cfg.backbone, weights=cfg.weights, n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head,
            n_inner=cfg.n_inner, activation=cfg.activation, embd_pdrop=cfg.embd_pdrop,
            attn_pdrop=cfg.attn_pdrop, resid_pdrop=cfg.resid_pdrop, attn_implementation=cfg.attn_implementation)
        disable_position_embeddings(self.transformer)
        d = self.transformer.config.n_embd
        self.hidden_size = d
        self.embed_timestep = nn.Embedding(cfg.max_ep_len, d)
        self.embed_return = nn.Linear(1, d)
        self.embed_state = nn.Linear(cfg.state_dim, d)
        self.embed_action = nn.Linear(cfg.act_dim, d)
        self.embed_ln = nn.LayerNorm(d)

    def forward(self, states: torch.Tensor, actions: torch.Tensor, returns_to_go: torch.Tensor,
                timesteps: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Action predictions [B, K, A] from states [B,K,S], actions [B,K,A], returns_to_go
        [B,K,1], timesteps [B,K] (long) and attention_mask [B,K] (1 real, 0 padding; None = all 1)."""
        B, K = self._check_inputs(states, actions, returns_to_go, timesteps, attention_mask)
        d = self.hidden_size
        if attention_mask is None:
            attention_mask = torch.ones(B, K, device=states.device)
        time = self.embed_timestep(timesteps)                                    # [B, K, d]
        ret = self.embed_return(returns_to_go)                                   # [B, K, d]
        state = self.embed_state(states)                                         # [B, K, d]
        action = self.embed_action(actions)                                      # [B, K, d]
        if self.cfg.time_embedding == "before_ln":
            ret, state, action = ret + time, state + time, action + time
        tokens = torch.stack((ret, state, action), dim=2).reshape(B, 3 * K, d)   # [B, 3K, d]: R1 s1 a1 R2 ...
        tokens = self.embed_ln(tokens)
        if self.cfg.time_embedding == "after_ln":
            tokens = tokens + time.repeat_interleave(3, dim=1)                   # [B, 3K, d]
        token_mask = attention_mask.repeat_interleave(3, dim=1)                  # [B, 3K]
        bias = attention_bias(token_mask, self.transformer.config._attn_implementation, tokens.dtype)
        # use_cache=False: the body's config defaults to building a key/value cache, which copies
        # every layer's keys and values and is never read here (docs/benchmarks.md)
        h = self.transformer(inputs_embeds=tokens, attention_mask=bias, use_cache=False).last_hidden_state
        h = h.reshape(B, K, 3, d)                                                # [B, K, (R, s, a), d]
        return torch.tanh(h[:, :, 1] @ self.embed_action.weight)                 # [B, K, A] from s_t

    def _check_inputs(self, states, actions, returns_to_go, timesteps, attention_mask) -> tuple[int, int]:
        if states.ndim != 3 or states.shape[-1] != self.cfg.state_dim:
            raise ValueError(f"states must be [B, K, {self.cfg.state_dim}], got {tuple(states.shape)}")
        B, K = states.shape[:2]
        expected = {"actions": (actions, (B, K, self.cfg.act_dim)),
                    "returns_to_go": (returns_to_go, (B, K, 1)), "timesteps": (timesteps, (B, K))}
        if attention_mask is not None:
            expected["attention_mask"] = (attention_mask, (B, K))
        for name, (tensor, shape) in expected.items():
            if tuple(tensor.shape) != shape:
                raise ValueError(f"{name} must be {list(shape)} to match states {tuple(states.shape)}, "
                                 f"got {tuple(tensor.shape)}")
        return B, K


def attention_bias(token_mask: torch.Tensor, implementation: str, dtype: torch.dtype) -> torch.Tensor:
    """4-D attention mask [B, 1, T, T] from a [B, T] token mask: causal, real keys only, and the
    diagonal always open (a padded query sees itself). Boolean for SDPA, additive 0/min for eager."""
    T = token_mask.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=token_mask.device).tril()      # [T, T]
    diagonal = torch.eye(T, dtype=torch.bool, device=token_mask.device)              # [T, T]
    allowed = causal & ((token_mask > 0)[:, None, None, :] | diagonal)               # [B, 1, T, T]
    if implementation == "sdpa":
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(dtype).min)


def build_model(cfg: ModelConfig) -> DecisionTransformer:
    """Seed torch with ``cfg.seed``, then build (docs/spec.md §3.6): the same seed gives the same bits.

    With ``cfg.block_index`` set (§5.6.1, docs/spec.md §3.7): build the GPT-2 DT from ``cfg.block_donor``
    with the same seed, build the random DT with the same seed (so its weights are the random
    baseline's), and put the donor's whole block ``index`` into it (every index, 0 included).
    """
    donor = None
    if cfg.block_index is not None:
        if cfg.backbone != "random" or not cfg.block_donor:
            raise ValueError(f"block replacement needs backbone 'random' and a block_donor, got "
                             f"backbone={cfg.backbone!r}, block_donor={cfg.block_donor!r}")
        donor_cfg = dataclasses.replace(cfg, backbone=BLOCK_DONOR, weights=cfg.block_donor,
                                        block_index=None, block_donor=None)
        torch.manual_seed(cfg.seed)
        donor = DecisionTransformer(donor_cfg)
    torch.manual_seed(cfg.seed)
    model = DecisionTransformer(cfg)
    if donor is not None:
        replace_block(model, donor, cfg.block_index)
    return model


def _body(model: nn.Module) -> GPT2Model:
    return model.transformer if isinstance(model, DecisionTransformer) else model


def replace_block(model: DecisionTransformer | GPT2Model, donor: DecisionTransformer | GPT2Model,
                  index: int) -> None:
    """Put a copy of the donor's whole block ``h[index]`` (ln_1, attn with its heads, ln_2, mlp
    with its activation) into ``model`` in place (docs/spec.md §3.7). Nothing else is copied.

    The copied block follows the host body's attention implementation (its ``attn.config`` is
    re-pointed to the host config; nothing else in a block's forward reads its config)."""
    host, src = _body(model), _body(donor)
    n = len(host.h)
    if not isinstance(index, int) or not 0 <= index < min(n, len(src.h)):
        raise ValueError(f"index must be an int in [0, {min(n, len(src.h))}), got {index!r}")
    if src.config.n_embd != host.config.n_embd:
        raise ValueError(f"donor width {src.config.n_embd} differs from the model's {host.config.n_embd}")
    block = copy.deepcopy(src.h[index])
    block.attn.config = host.config
    block.train(host.training)
    host.h[index] = block


def layer_names(n_layer: int) -> list[str]:
    """The hooked layer names in docs/spec.md §6.0 order: ``0.ln_1``, ``0.attn.c_attn``, ... (9 per block)."""
    return [f"{i}.{layer}" for i in range(n_layer) for layer in HOOKED_LAYERS]


class Activations(dict):
    """Hooked outputs by layer name, each [B, 3K, width], in docs/spec.md §6.0 order; ``attentions`` is
    the per-block list of attention probabilities [B, H, 3K, 3K] when asked for, else None."""

    attentions: list[torch.Tensor] | None = None


def capture_activations(model: DecisionTransformer, batch, layers: Iterable[str] | None = None,
                        attention: bool = False) -> Activations:
    """Forward ``batch`` (a :class:`dtcore.samplers.Batch`, rtg[:, :-1]) in eval mode under no_grad
    and return the outputs of the hooked layers (docs/spec.md §6.0). With ``attention=True`` the body runs
    with eager attention and the real causal, padding-masked per-head probabilities are returned
    (``output.attentions``). The model's train/eval mode and attention implementation are restored.
    """
    body = model.transformer
    names = layer_names(len(body.h))
    if layers is not None:
        wanted = set(layers)
        unknown = sorted(wanted - set(names))
        if unknown:
            raise ValueError(f"layers: unknown names {unknown[:5]}; expected names like '3.attn.c_attn' "
                             f"for blocks 0..{len(body.h) - 1}")
        names = [n for n in names if n in wanted]
    out = Activations()
    attentions: list[torch.Tensor | None] = [None] * len(body.h)
    handles = []

    def keep(name):
        return lambda _module, _inputs, output: out.__setitem__(name, output.detach())

    def keep_attention(i):
        return lambda _module, _inputs, output: attentions.__setitem__(i, output[1].detach())

    for name in names:
        block, sub = name.split(".", 1)
        handles.append(body.h[int(block)].get_submodule(sub).register_forward_hook(keep(name)))
    if attention:
        handles += [blk.attn.register_forward_hook(keep_attention(i)) for i, blk in enumerate(body.h)]
    was_training, implementation = model.training, body.config._attn_implementation
    device = next(model.parameters()).device
    try:
        model.eval()
        if attention:
            body.set_attn_implementation("eager")
        b = batch.to(device)
        with torch.no_grad():
            model(b.states, b.actions, b.rtg[:, :-1], b.timesteps, b.mask)
    finally:
        for handle in handles:
            handle.remove()
        if attention:
            body.set_attn_implementation(implementation)
        model.train(was_training)
    ordered = Activations((name, out[name]) for name in names)
    ordered.attentions = attentions if attention else None
    return ordered


def action_loss(model: nn.Module, batch) -> torch.Tensor:
    """Masked action MSE of docs/spec.md §4: the mean of (a_hat - a)^2 over the real steps' K x A entries.

    Forward on ``rtg[:, :-1]``. Written as a mask-weighted sum / count (the same number as selecting
    the rows where mask > 0) so that no data-dependent shape forces a device synchronisation.
    """
    preds = model(batch.states, batch.actions, batch.rtg[:, :-1], batch.timesteps, batch.mask)  # [B, K, A]
    weight = (batch.mask > 0).to(torch.float32)[..., None]                                      # [B, K, 1]
    squared = (preds.float() - batch.actions.float()) ** 2                                      # [B, K, A]
    return (squared * weight).sum() / (weight.sum() * preds.shape[-1])
