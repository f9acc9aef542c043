"""One grid cell as a runnable experiment: the configs with local paths and the dataset file.

:func:`runnable` is the one place a cell (profile, env, backbone, seed, variant) becomes what a
process needs to train it: the frozen :class:`~dtcore.config.ExperimentConfig` the cache keys on
(assets named by identity and content hash, never by where they live), the same model config with
the local weights path :func:`dtcore.model.build_model` loads, and the dataset file. It is a pure
function of the cell and its :class:`Assets`; :func:`resolve_assets` builds or finds those (the
offline dataset and pretrained bodies, once, in the asset cache) and hashes them. The command
line, the run store, the grid builder and a cluster launcher all go through these two.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from dtcore.bodies import weights_modality
from dtcore.config import ExperimentConfig, ModelConfig
from dtcore.profiles import Profile, experiment
from dtcore.provenance import sha256_tree


@dataclass(frozen=True)
class Assets:
    """The resolved assets of one cell."""

    dataset: Path                  # local dataset file (D4RL-layout HDF5 or pickle)
    dataset_sha256: str            # its content hash (dtcore.data.dataset_sha256: arrays only): part of the cache key
    weights: str | None = None     # local HF-format folder or hub name of the weights the run loads
    weights_sha256: str = ""       # their content hash ("" for a random body; weights_sha256): part of the cache key


@dataclass(frozen=True)
class Experiment:
    """What a process needs to train one cell."""

    config: ExperimentConfig       # the cache key: assets by identity and sha256
    model: ModelConfig             # config.model with the local weights path: build_model builds it
    dataset: Path                  # the local dataset file


def runnable(profile: Profile, env: str, backbone: str, seed: int, variant: str, assets: Assets) -> Experiment:
    """The experiment of one grid cell with its resolved ``assets`` (no I/O)."""
    cfg = experiment(profile, env, backbone, seed, variant, dataset_sha256=assets.dataset_sha256,
                     weights_sha256=assets.weights_sha256)
    return Experiment(cfg, with_weights(cfg.model, assets.weights), assets.dataset)


def with_weights(model: ModelConfig, ref: str | None) -> ModelConfig:
    """``model`` with its weights and block donor (where it has them) pointing at ``ref``."""
    if ref is None:
        return model
    return dataclasses.replace(model, weights=ref if model.weights is not None else None,
                               block_donor=ref if model.block_donor is not None else None)


def resolve_dataset(profile: Profile, env: str, *, progress: bool = True) -> tuple[Path, str]:
    """(local file, sha256) of ``env``'s dataset under ``profile``, built first when it is an asset."""
    from dtcore.assets import resolve_dataset as resolve
    from dtcore.data import dataset_sha256

    path = Path(resolve(profile, env, progress=progress))
    return path, dataset_sha256(path)


def resolve_weights(profile: Profile, modality: str, *, progress: bool = True) -> tuple[str, str]:
    """(local folder or hub name, sha256) of the profile's ``modality`` body, built first when it
    is an asset (the profile hands asset resolution its recipe)."""
    from dtcore.assets import resolve_weights as resolve

    ref = str(resolve(profile.weights(modality), profile, progress=progress))
    return ref, weights_sha256(ref)


def resolve_assets(profile: Profile, env: str, backbone: str, variant: str, *, progress: bool = True) -> Assets:
    """The assets of one cell: its dataset and, when it loads any, its weights, with their hashes."""
    dataset, dataset_sha = resolve_dataset(profile, env, progress=progress)
    modality = weights_modality(backbone, variant)
    if modality is None:
        return Assets(dataset, dataset_sha)
    ref, sha = resolve_weights(profile, modality, progress=progress)
    return Assets(dataset, dataset_sha, ref, sha)


# Files of a weights folder that describe how it was made, not what it is: left out of its hash,
# so a body pretrained again to the same weights (other timings) keeps every run key.
NOT_IDENTITY = ("provenance.json", "pretrain_metrics.json")


def weights_sha256(ref: str) -> str:
    """Content hash of a local HF-format folder (every file but :data:`NOT_IDENTITY`), or of a hub
    model's cached snapshot; a hub name that is not cached hashes as ``hub:<name>`` (building its
    model then fails offline)."""
    local = Path(ref).expanduser()
    if local.exists():
        return sha256_tree(local, skip=NOT_IDENTITY)
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(ref, "config.json")
    except Exception:  # noqa: BLE001 - any failure of the cache lookup means "not cached"
        config = None
    return sha256_tree(Path(config).parent, skip=NOT_IDENTITY) if isinstance(config, str) else f"hub:{ref}"
