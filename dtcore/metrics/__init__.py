"""The measures behind each finding of Takagi (NeurIPS 2022), as pure functions.

One module per measure, each naming the paper section it serves:

- :mod:`~dtcore.metrics.cka`: linear / RBF CKA, biased and debiased, layer x layer matrices, a
  minibatch accumulator and per-layer values on subsets of the samples (§5.1, App. D;
  docs/spec.md §6.1).
- :mod:`~dtcore.metrics.mine`: MINE (Donsker-Varadhan, EMA-corrected gradient), in-sample as
  published and held-out, batched over many estimators; a Gaussian plug-in cross-check (§5.2,
  App. E; docs/spec.md §6.2).
- :mod:`~dtcore.metrics.params`: L2 distance and cosine of parameters before/after fine-tuning
  (§5.3, App. F; docs/spec.md §6.3).
- :mod:`~dtcore.metrics.gradients`: clipped per-sample gradients (torch.func), gradient
  confusion, per-parameter gradient norms, of the full batch and of the mean gradient of subsets
  of samples (§5.4; docs/spec.md §6.4).
- :mod:`~dtcore.metrics.attention`: mean attention distance, true and as published (§5.6.2;
  docs/spec.md §6.7).
- :mod:`~dtcore.metrics.smoothing`: the exponential moving average of Fig. 9 (docs/spec.md §6.6).

The contract shared by every function here, implemented once in :mod:`~dtcore.metrics.arrays`: inputs are
numpy arrays or torch tensors (any device, any float dtype), are never modified, are converted
to float64 before any arithmetic, and bad input raises ``ValueError`` naming the argument and its
shape (non-finite values, wrong rank, mismatched sample counts, too few samples).
"""

from __future__ import annotations

# The public API, importable from the package.
from dtcore.metrics.arrays import as_array, as_tensor, same_samples, shape_of
from dtcore.metrics.attention import (
    attention_distance,
    mean_attention_distance,
    published_attention_distance,
    token_mask_from_steps,
)
from dtcore.metrics.cka import (
    MinibatchCKA,
    cka_matrix,
    cka_replicates,
    feature_space_linear_cka,
    linear_cka,
    rbf_cka,
    select_tokens,
)
from dtcore.metrics.gradients import (
    cosine_matrix,
    gradient_confusion,
    mean_gradient_norms,
    norm_ratio,
    parameter_columns,
    per_parameter_grad_norms,
    per_sample_gradients,
    per_sample_gradients_loop,
)
from dtcore.metrics.mine import MIEstimate, gaussian_mi, mine, mine_many
from dtcore.metrics.params import ParamChange, concatenated_parameter_change, parameter_changes
from dtcore.metrics.smoothing import ema

__all__ = [
    "MIEstimate", "MinibatchCKA", "ParamChange", "as_array", "as_tensor", "attention_distance", "cka_matrix",
    "cka_replicates", "concatenated_parameter_change", "cosine_matrix", "ema", "feature_space_linear_cka",
    "gaussian_mi", "gradient_confusion", "linear_cka", "mean_attention_distance", "mean_gradient_norms",
    "mine", "mine_many", "norm_ratio", "parameter_changes", "parameter_columns", "per_parameter_grad_norms",
    "per_sample_gradients", "per_sample_gradients_loop", "published_attention_distance",
    "rbf_cka", "same_samples", "select_tokens", "shape_of", "token_mask_from_steps",
]
