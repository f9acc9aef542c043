"""Small language- and image-pretrained backbones built offline (the stand-ins for ``gpt2`` and
``openai/imagegpt-small``, paper §3 / paper-spec §3.1).

* language: a byte-level (vocab 256) ``GPT2LMHeadModel`` with GPT-2's block (gelu_new, biased
  LayerNorm), trained on the docstrings of the installed Python standard library (collected with
  ``ast``; ``test``/``tests``/``idlelib`` folders skipped; files in sorted order; the last 5% of the
  bytes held out) or on ``recipe.corpus`` read as a UTF-8 text file.
* image: an ``ImageGPTForCausalImageModeling`` (ImageGPT's block: quick_gelu, weight-only
  LayerNorm) on scikit-learn's 8x8 digits, each pixel one of 16 grey-level colour clusters,
  sequence = start token + 64 pixels in raster order; the last 10% of the images held out.

Both are saved with ``save_pretrained`` so they load through exactly the code path of the real
checkpoints (``dtcore.backbones.build_backbone``: GPT-2 format for ``gpt2``, ImageGPT format for
``igpt``, carried into GPT-2 as the paper's code did). ``pretrain_metrics.json`` beside the
weights keeps the loss curve, held-out loss and perplexity, and a unigram model's held-out loss on
the same tokens, so anyone can check that pretraining worked.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import logging
import math
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dtcore.assets.recipes import PretrainRecipe

log = logging.getLogger(__name__)

METRICS_FILE = "pretrain_metrics.json"
HELDOUT_FRACTION = {"language": 0.05, "image": 0.10}
N_CLUSTERS = 16              # grey-level colour clusters of the image model (ImageGPT-small: 512 RGB)
MAX_HELDOUT_WINDOWS = 256    # held-out language windows evaluated (all held-out images are used)
N_EVALS = 10                 # held-out evaluations along training (plus one before the first step)
DROPOUT = 0.1                # embd / attn / resid dropout while pretraining
AUTOCAST_BF16 = False        # bf16 autocast measured no faster at these widths on this CPU (docs/assets.md)
SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__"}


# --------------------------------------------------------------------------- corpora


def stdlib_docstrings(root: str | Path | None = None) -> str:
    """Every module, class and function docstring of the standard library under ``root``
    (default: this interpreter's), files in sorted order, joined by blank lines."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    docs: list[str] = []
    for path in sorted(root.rglob("*.py")):
        if SKIP_DIRS.intersection(path.relative_to(root).parts[:-1]):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    docs.append(doc)
    return "\n\n".join(docs)


def language_corpus(recipe: PretrainRecipe) -> bytes:
    """The UTF-8 bytes the language model trains on: stdlib docstrings or the file ``recipe.corpus``."""
    if recipe.corpus == "stdlib-docstrings":
        return stdlib_docstrings().encode("utf-8")
    path = Path(recipe.corpus).expanduser()
    if not path.is_file():
        raise ValueError(f"recipe.corpus must be 'stdlib-docstrings' or a text file, got {recipe.corpus!r}")
    return path.read_text(encoding="utf-8").encode("utf-8")


def corpus_fingerprint(recipe: PretrainRecipe) -> dict[str, str]:
    """What the recipe does not say about the training data, for the asset cache key."""
    import platform

    if recipe.modality == "image":
        import sklearn

        return {"digits": f"sklearn {sklearn.__version__}"}
    if recipe.corpus == "stdlib-docstrings":
        return {"corpus": f"stdlib-docstrings python {platform.python_version()}"}
    return {"corpus_sha256": hashlib.sha256(language_corpus(recipe)).hexdigest()}


def digit_clusters(pixels: np.ndarray) -> np.ndarray:
    """Map digit intensities 0..16 to grey-level clusters 0..N_CLUSTERS-1 (uniform bins)."""
    return np.minimum((pixels.astype(np.int64) * N_CLUSTERS) // 17, N_CLUSTERS - 1)


def digit_sequences() -> np.ndarray:
    """scikit-learn's 1797 8x8 digits as token rows ``[1797, 65]``: start token, then 64 pixels."""
    from sklearn.datasets import load_digits

    images = load_digits().images                                     # [N, 8, 8], values 0..16
    tokens = digit_clusters(images.reshape(len(images), 64))          # [N, 64]
    start = np.full((len(images), 1), N_CLUSTERS, dtype=np.int64)     # start token = last id
    return np.concatenate([start, tokens], axis=1)                    # [N, 65]


# --------------------------------------------------------------------------- models


def build_model(recipe: PretrainRecipe) -> torch.nn.Module:
    """A freshly initialised LM of the recipe's modality and size (seeded by the caller)."""
    if recipe.modality == "language":
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(vocab_size=256, n_positions=recipe.seq_len, n_embd=recipe.n_embd,
                         n_layer=recipe.n_layer, n_head=recipe.n_head, activation_function="gelu_new",
                         resid_pdrop=DROPOUT, embd_pdrop=DROPOUT, attn_pdrop=DROPOUT,
                         bos_token_id=0, eos_token_id=0)
        return GPT2LMHeadModel(cfg)
    if recipe.modality == "image":
        from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling

        cfg = ImageGPTConfig(vocab_size=N_CLUSTERS + 1, n_positions=65, n_embd=recipe.n_embd,
                             n_layer=recipe.n_layer, n_head=recipe.n_head, activation_function="quick_gelu",
                             resid_pdrop=DROPOUT, embd_pdrop=DROPOUT, attn_pdrop=DROPOUT,
                             bos_token_id=N_CLUSTERS, eos_token_id=N_CLUSTERS)
        return ImageGPTForCausalImageModeling(cfg)
    raise ValueError(f"recipe.modality must be 'language' or 'image', got {recipe.modality!r}")


def next_token_loss(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats) of tokens[:, 1:] given their prefixes; tokens [B, T] long."""
    logits = model(input_ids=tokens).logits                            # [B, T, V]
    return F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))


# --------------------------------------------------------------------------- data splits


@dataclasses.dataclass(frozen=True)
class Splits:
    sample: Callable[[torch.Generator, int], torch.Tensor]  # (generator, batch) -> tokens [B, T]
    heldout: torch.Tensor                                   # [N, T] long
    unigram_loss: float                                     # held-out CE (nats) of train unigram
    info: dict


def _unigram_loss(train_tokens: torch.Tensor, targets: torch.Tensor, vocab: int) -> float:
    """Held-out cross-entropy of the add-one-smoothed unigram model of the training tokens."""
    counts = torch.bincount(train_tokens.reshape(-1), minlength=vocab).double() + 1.0
    logp = torch.log(counts / counts.sum())
    return float(-logp[targets.reshape(-1)].mean())


def language_splits(recipe: PretrainRecipe) -> Splits:
    data = torch.tensor(np.frombuffer(language_corpus(recipe), dtype=np.uint8).astype(np.int64))
    n_train = int(len(data) * (1 - HELDOUT_FRACTION["language"]))
    train, held = data[:n_train], data[n_train:]
    T = recipe.seq_len
    if len(train) <= T or len(held) < T:
        raise ValueError(f"corpus of {len(data)} bytes is too small for seq_len {T}")
    n_windows = min(len(held) // T, MAX_HELDOUT_WINDOWS)
    heldout = held[: n_windows * T].reshape(n_windows, T)              # [N, T]

    def sample(gen: torch.Generator, batch: int) -> torch.Tensor:
        starts = torch.randint(0, len(train) - T + 1, (batch,), generator=gen)
        return train[starts[:, None] + torch.arange(T)]                # [B, T]

    return Splits(sample, heldout, _unigram_loss(train, heldout[:, 1:], 256),
                  {"corpus": recipe.corpus, "corpus_bytes": len(data), "train_bytes": n_train,
                   "heldout_bytes": len(held), "heldout_windows": n_windows})


def image_splits(recipe: PretrainRecipe) -> Splits:
    seqs = torch.tensor(digit_sequences())                             # [N, 65]
    n_train = int(round(len(seqs) * (1 - HELDOUT_FRACTION["image"])))
    train, heldout = seqs[:n_train], seqs[n_train:]

    def sample(gen: torch.Generator, batch: int) -> torch.Tensor:
        return train[torch.randint(0, n_train, (batch,), generator=gen)]  # [B, 65]

    return Splits(sample, heldout, _unigram_loss(train[:, 1:], heldout[:, 1:], N_CLUSTERS),
                  {"images": len(seqs), "train_images": n_train, "heldout_images": len(heldout),
                   "clusters": N_CLUSTERS, "cluster_rule": "min(v * 16 // 17, 15) for v in 0..16",
                   "start_token": N_CLUSTERS})


# --------------------------------------------------------------------------- training


def lr_at(step: int, recipe: PretrainRecipe) -> float:
    """Linear warm-up over min(100, steps/10) steps to ``recipe.lr``, then cosine decay to lr/10."""
    warmup = min(100, max(1, recipe.steps // 10))
    if step < warmup:
        return recipe.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, recipe.steps - warmup)
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def heldout_loss(model: torch.nn.Module, heldout: torch.Tensor, batch: int = 64) -> float:
    """Token-weighted mean next-token loss (nats) over the held-out rows, eval mode, fp32."""
    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    for i in range(0, len(heldout), batch):
        rows = heldout[i:i + batch]
        k = rows.shape[0] * (rows.shape[1] - 1)
        total += float(next_token_loss(model, rows)) * k
        n += k
    model.train(was_training)
    return total / n


def _train(model: torch.nn.Module, splits: Splits, recipe: PretrainRecipe, progress: bool) -> dict:
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(recipe.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.95), weight_decay=0.01)
    eval_steps = sorted({0, *(round(recipe.steps * (i + 1) / N_EVALS) for i in range(N_EVALS))})
    curve = {"step": [], "heldout_loss": []}
    train_losses: list[float] = []
    model.train()
    t0 = time.perf_counter()
    for step in tqdm(range(recipe.steps + 1), desc=f"pretrain {recipe.modality}", disable=not progress,
                     leave=False):
        if step in eval_steps:
            curve["step"].append(step)
            curve["heldout_loss"].append(heldout_loss(model, splits.heldout))
            log.debug("pretrain %s step %d held-out loss %.4f", recipe.modality, step, curve["heldout_loss"][-1])
        if step == recipe.steps:
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe)
        tokens = splits.sample(gen, recipe.batch_size)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=AUTOCAST_BF16):
            loss = next_token_loss(model, tokens)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        train_losses.append(loss.item())
    wall = time.perf_counter() - t0
    final = curve["heldout_loss"][-1]
    return {
        "train_loss": train_losses,
        "heldout_curve": curve,
        "heldout_loss_initial": curve["heldout_loss"][0],
        "heldout_loss": final,
        "heldout_perplexity": math.exp(final),
        "unigram_heldout_loss": splits.unigram_loss,
        "unigram_heldout_perplexity": math.exp(splits.unigram_loss),
        "bits_per_token": final / math.log(2),
        "train_wall_s": wall,
        "ms_per_step": 1000 * wall / max(1, recipe.steps),
    }


def pretrain(recipe: PretrainRecipe, out_dir: str | Path, *, progress: bool = True) -> Path:
    """Pretrain ``recipe``'s model and ``save_pretrained`` it into ``out_dir`` with
    ``pretrain_metrics.json``. Deterministic given the recipe (torch seeded with ``recipe.seed``)."""
    out_dir = Path(out_dir)
    splits = {"language": language_splits, "image": image_splits}[recipe.modality](recipe) \
        if recipe.modality in ("language", "image") else None
    if splits is None:
        raise ValueError(f"recipe.modality must be 'language' or 'image', got {recipe.modality!r}")
    torch.manual_seed(recipe.seed)
    model = build_model(recipe)
    metrics = _train(model, splits, recipe, progress)
    metrics.update(recipe=dataclasses.asdict(recipe), data=splits.info, bf16_autocast=AUTOCAST_BF16,
                   weights_format={"language": "gpt2", "image": "imagegpt"}[recipe.modality],
                   dropout=DROPOUT, optimiser="AdamW(betas 0.9/0.95, wd 0.01), grad clip 1.0, "
                   "warm-up min(100, steps/10) then cosine to lr/10")
    model.eval()
    model.save_pretrained(out_dir)
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=1))
    log.info("pretrained %s (%d layers, width %d, %d heads): held-out loss %.3f -> %.3f nats/token "
             "(perplexity %.2f); unigram %.3f; %.1f ms/step, %.0f s",
             recipe.modality, recipe.n_layer, recipe.n_embd, recipe.n_head, metrics["heldout_loss_initial"],
             metrics["heldout_loss"], metrics["heldout_perplexity"], metrics["unigram_heldout_loss"],
             metrics["ms_per_step"], metrics["train_wall_s"])
    return out_dir


def read_metrics(path: str | Path) -> dict:
    return json.loads((Path(path) / METRICS_FILE).read_text())
