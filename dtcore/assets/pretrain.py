"""Small language- and image-pretrained backbones built offline (the stand-ins for ``gpt2`` and
``openai/imagegpt-small``, paper §3; docs/assets.md).

* language: a byte-level (vocab 256) ``GPT2LMHeadModel`` with GPT-2's block (gelu_new, biased
  LayerNorm). ``recipe.corpus``: ``"english"``, real English from registry packages
  (:mod:`dtcore.assets.corpus`: a dictionary, novels, the Brown corpus, technical documentation;
  held out: whole documents of prose); ``"stdlib-docstrings"``, the docstrings of the installed
  Python standard library (collected with ``ast``; ``test``/``tests``/``idlelib`` folders
  skipped; files in sorted order; the last 5% of the bytes held out); or a UTF-8 text file (the
  last 5% held out).
* image: an ``ImageGPTForCausalImageModeling`` (ImageGPT's block: quick_gelu, weight-only
  LayerNorm) predicting the next pixel in raster order after a start token, each pixel one of 16
  grey levels. ``recipe.corpus``: ``"fashion-mnist"``, Fashion-MNIST's 60,000 training images
  average-pooled 2x2 to 14x14, the palette fitted by k-means on the training pixels as ImageGPT
  fits its colour palette, the first 500 test images held out; or ``"digits"``, scikit-learn's
  8x8 digits in 16 uniform grey levels, the last 10% held out.

Both are saved with ``save_pretrained`` so they load through exactly the code path of the real
checkpoints (``dtcore.backbones.build_backbone``: GPT-2 format for ``gpt2``, ImageGPT format for
``igpt``, carried into GPT-2 as the paper's code did). ``pretrain_metrics.json`` beside the
weights keeps the loss curve, held-out loss, bits per token and perplexity, and a unigram model's
held-out loss on the same tokens, so anyone can check that pretraining worked.
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
HELDOUT_FRACTION = {"language": 0.05, "image": 0.10}   # of a single-text corpus / of the digits
N_CLUSTERS = 16              # grey-level colour clusters of the image model (ImageGPT-small: 512 RGB)
MAX_HELDOUT_WINDOWS = 256    # held-out language windows evaluated, spread evenly over the held-out text
FASHION_HELDOUT_IMAGES = 500   # Fashion-MNIST test images evaluated, the first ones (98,000 pixels; an
                             # evaluation of 500 takes about 9 s on one core: 11 of them per pretraining)
FASHION_POOL = 2             # average-pooling factor: 28x28 -> 14x14 (ImageGPT too lowers the resolution)
KMEANS_ITERS = 100           # Lloyd iterations of the grey-level palette (stops earlier when stable)
N_EVALS = 10                 # held-out evaluations along training (plus one before the first step)
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


def english_corpus_dir() -> Path:
    """The cached asset holding ``train.txt`` and ``heldout.txt`` of the English corpus."""
    from dtcore.assets import corpus
    from dtcore.assets.store import build_asset

    recipe = {"sources": [dataclasses.asdict(s) for s in corpus.ENGLISH],
              "max_source_bytes": corpus.MAX_SOURCE_BYTES}
    return build_asset("corpora", "english", recipe, lambda out: corpus.english_corpus(out))


def language_texts(recipe: PretrainRecipe) -> tuple[bytes, bytes | None]:
    """(training bytes, held-out bytes) of ``recipe.corpus``; held-out None: the caller holds
    out the last ``HELDOUT_FRACTION`` of the training bytes."""
    if recipe.corpus == "english":
        folder = english_corpus_dir()
        return (folder / "train.txt").read_bytes(), (folder / "heldout.txt").read_bytes()
    if recipe.corpus == "stdlib-docstrings":
        return stdlib_docstrings().encode("utf-8"), None
    path = Path(recipe.corpus).expanduser()
    if not path.is_file():
        raise ValueError(f"recipe.corpus must be 'english', 'stdlib-docstrings' or a text file, got {recipe.corpus!r}")
    return path.read_text(encoding="utf-8").encode("utf-8"), None


def corpus_fingerprint(recipe: PretrainRecipe) -> dict[str, str]:
    """What the recipe does not say about the training data, for the asset cache key."""
    import platform

    from dtcore.assets import corpus

    if recipe.modality == "image":
        if recipe.corpus == "fashion-mnist":
            return {"images_sha256": corpus.FASHION_MNIST.sha256}
        import sklearn

        return {"digits": f"sklearn {sklearn.__version__}"}
    if recipe.corpus == "english":
        return {"sources_sha256": ",".join(s.sha256[:16] for s in corpus.ENGLISH),
                "max_source_bytes": str(corpus.MAX_SOURCE_BYTES)}
    if recipe.corpus == "stdlib-docstrings":
        return {"corpus": f"stdlib-docstrings python {platform.python_version()}"}
    return {"corpus_sha256": hashlib.sha256(language_texts(recipe)[0]).hexdigest()}


def digit_clusters(pixels: np.ndarray) -> np.ndarray:
    """Map digit intensities 0..16 to grey-level clusters 0..N_CLUSTERS-1 (uniform bins)."""
    return np.minimum((pixels.astype(np.int64) * N_CLUSTERS) // 17, N_CLUSTERS - 1)


def digit_sequences() -> np.ndarray:
    """scikit-learn's 1797 8x8 digits as token rows ``[1797, 65]``: start token, then 64 pixels."""
    from sklearn.datasets import load_digits

    images = load_digits().images                                     # [N, 8, 8], values 0..16
    tokens = digit_clusters(images.reshape(len(images), 64))          # [N, 64]
    return _with_start(tokens)


def _with_start(tokens: np.ndarray) -> np.ndarray:
    start = np.full((len(tokens), 1), N_CLUSTERS, dtype=np.int64)     # start token = last id
    return np.concatenate([start, tokens.astype(np.int64)], axis=1)    # [N, 1 + P]


def pool(images: np.ndarray, factor: int) -> np.ndarray:
    """Average-pool uint8 images ``[N, H, W]`` by ``factor`` (H, W divisible), rounded to uint8."""
    n, h, w = images.shape
    blocks = images.reshape(n, h // factor, factor, w // factor, factor).astype(np.float64)
    return np.rint(blocks.mean(axis=(2, 4))).astype(np.uint8)         # [N, H/f, W/f]


def grey_palette(pixels: np.ndarray, k: int = N_CLUSTERS) -> np.ndarray:
    """``k`` grey levels (sorted float centres) fitted by 1-D k-means (Lloyd) to uint8 ``pixels``,
    run on their 256-bin histogram from evenly spaced starting centres: deterministic."""
    counts = np.bincount(pixels.reshape(-1), minlength=256).astype(np.float64)
    values = np.arange(256, dtype=np.float64)
    centres = (np.arange(k) + 0.5) * 256 / k
    for _ in range(KMEANS_ITERS):
        assign = np.abs(values[:, None] - centres[None, :]).argmin(axis=1)   # [256]
        weight = np.bincount(assign, weights=counts, minlength=k)
        total = np.bincount(assign, weights=counts * values, minlength=k)
        new = np.where(weight > 0, total / np.maximum(weight, 1e-12), centres)
        if np.allclose(new, centres):
            break
        centres = new
    return np.sort(centres)


def quantise(pixels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest palette level of every uint8 pixel (same shape, int64)."""
    lookup = np.abs(np.arange(256)[:, None] - palette[None, :]).argmin(axis=1)
    return lookup[pixels]


def fashion_sequences() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train ``[60000, 197]``, held-out ``[500, 197]`` token rows, palette ``[16]``): Fashion-MNIST
    pooled to 14x14, quantised to the training pixels' k-means palette, a start token first."""
    from dtcore.assets.corpus import fashion_mnist

    train, test = (pool(x, FASHION_POOL) for x in fashion_mnist())
    palette = grey_palette(train)
    rows = [_with_start(quantise(x, palette).reshape(len(x), -1)) for x in (train, test[:FASHION_HELDOUT_IMAGES])]
    return rows[0], rows[1], palette


# --------------------------------------------------------------------------- models


def build_model(recipe: PretrainRecipe) -> torch.nn.Module:
    """A freshly initialised LM of the recipe's modality and size (seeded by the caller)."""
    if recipe.modality == "language":
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = GPT2Config(vocab_size=256, n_positions=recipe.seq_len, n_embd=recipe.n_embd,
                         n_layer=recipe.n_layer, n_head=recipe.n_head, activation_function="gelu_new",
                         resid_pdrop=recipe.dropout, embd_pdrop=recipe.dropout, attn_pdrop=recipe.dropout,
                         bos_token_id=0, eos_token_id=0)
        return GPT2LMHeadModel(cfg)
    if recipe.modality == "image":
        from transformers import ImageGPTConfig, ImageGPTForCausalImageModeling

        cfg = ImageGPTConfig(vocab_size=N_CLUSTERS + 1, n_positions=recipe.seq_len, n_embd=recipe.n_embd,
                             n_layer=recipe.n_layer, n_head=recipe.n_head, activation_function="quick_gelu",
                             resid_pdrop=recipe.dropout, embd_pdrop=recipe.dropout, attn_pdrop=recipe.dropout,
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
    train_bytes, held_bytes = language_texts(recipe)
    data = torch.from_numpy(np.frombuffer(train_bytes, dtype=np.uint8).copy())      # uint8: 1 byte each
    if held_bytes is None:
        n_train = int(len(data) * (1 - HELDOUT_FRACTION["language"]))
        train, held = data[:n_train], data[n_train:]
    else:
        train, held = data, torch.from_numpy(np.frombuffer(held_bytes, dtype=np.uint8).copy())
    T = recipe.seq_len
    if len(train) <= T or len(held) < T:
        raise ValueError(f"corpus {recipe.corpus!r} ({len(train)} training, {len(held)} held-out bytes) "
                         f"is too small for seq_len {T}")
    n_windows = min(len(held) // T, MAX_HELDOUT_WINDOWS)
    starts = torch.linspace(0, len(held) - T, n_windows).long()                     # evenly spread
    heldout = held[starts[:, None] + torch.arange(T)].long()                        # [N, T]

    def sample(gen: torch.Generator, batch: int) -> torch.Tensor:
        starts = torch.randint(0, len(train) - T + 1, (batch,), generator=gen)
        return train[starts[:, None] + torch.arange(T)].long()                      # [B, T]

    return Splits(sample, heldout, _unigram_loss(train.long(), heldout[:, 1:], 256),
                  {"corpus": recipe.corpus, "train_bytes": len(train), "heldout_bytes": len(held),
                   "heldout_windows": n_windows})


def image_splits(recipe: PretrainRecipe) -> Splits:
    if recipe.corpus == "fashion-mnist":
        train_rows, held_rows, palette = fashion_sequences()
        info = {"images": "Fashion-MNIST", "train_images": len(train_rows), "heldout_images": len(held_rows),
                "heldout_rule": f"the first {FASHION_HELDOUT_IMAGES} test images", "pool": FASHION_POOL,
                "palette": [round(float(c), 3) for c in palette]}
    elif recipe.corpus == "digits":
        seqs = digit_sequences()                                                    # [N, 65]
        n_train = int(round(len(seqs) * (1 - HELDOUT_FRACTION["image"])))
        train_rows, held_rows = seqs[:n_train], seqs[n_train:]
        info = {"images": "sklearn digits", "train_images": n_train, "heldout_images": len(held_rows),
                "cluster_rule": "min(v * 16 // 17, 15) for v in 0..16"}
    else:
        raise ValueError(f"image recipe.corpus must be 'fashion-mnist' or 'digits', got {recipe.corpus!r}")
    if train_rows.shape[1] != recipe.seq_len:
        raise ValueError(f"image recipe.seq_len is {recipe.seq_len}, the {recipe.corpus} rows hold "
                         f"{train_rows.shape[1]} tokens (start token + pixels)")
    train, heldout = torch.from_numpy(train_rows), torch.from_numpy(held_rows)

    def sample(gen: torch.Generator, batch: int) -> torch.Tensor:
        return train[torch.randint(0, len(train), (batch,), generator=gen)]        # [B, 1 + P]

    return Splits(sample, heldout, _unigram_loss(train[:, 1:], heldout[:, 1:], N_CLUSTERS),
                  {**info, "clusters": N_CLUSTERS, "start_token": N_CLUSTERS})


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
        "unigram_bits_per_token": splits.unigram_loss / math.log(2),
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
                   optimiser="AdamW(betas 0.9/0.95, wd 0.01), grad clip 1.0, "
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
