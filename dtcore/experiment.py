"""One grid cell as a runnable experiment: the configs with local paths and the dataset file.

:func:`runnable` is the one place a cell (profile, env, backbone, seed, variant) becomes what a
process needs to train it: the frozen :class:`~dtcore.config.ExperimentConfig` the cache keys on
(assets named by identity and content hash, never by where they live), the same model config with
the local weights path :func:`dtcore.model.build_model` loads, and the dataset file. It is a pure
function of the cell and its :class:`Assets`; an :class:`AssetResolver` builds or finds those (the
offline dataset and the weights of the body the run loads, once, in the asset cache) and hashes
them. The command line and the run store (and through it the grid builder and a cluster
launcher) all go through these two.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from dtcore.bodies import weights_body
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


def resolve_weights(profile: Profile, body: str, *, progress: bool = True) -> tuple[str, str]:
    """(local folder or hub name, sha256) of the weights ``profile`` gives ``body``
    (``Profile.weights``), built first when they are an asset (the profile hands asset resolution
    its recipe)."""
    from dtcore.assets import resolve_weights as resolve

    ref = str(resolve(profile.weights_of(body), profile, progress=progress))
    return ref, weights_sha256(ref)


class AssetResolver:
    """The assets of a profile's cells, each resolved (built, hashed) once per resolver: what the
    run store and the command line both use. ``datasets`` (env -> file) and ``weights`` (body ->
    folder or hub name) replace the profile's assets (the command line's ``--dataset`` /
    ``--weights``, tests' synthetic data); they are hashed like the profile's."""

    def __init__(self, profile: Profile, *, datasets: Mapping[str, str | Path] | None = None,
                 weights: Mapping[str, str | Path] | None = None, progress: bool = True) -> None:
        self.profile = profile
        self.progress = progress
        self._dataset_overrides = {env: Path(path) for env, path in (datasets or {}).items()}
        self._weight_overrides = {body: str(ref) for body, ref in (weights or {}).items()}
        self._datasets: dict[str, tuple[Path, str]] = {}
        self._weights: dict[str, tuple[str, str]] = {}

    def dataset(self, env: str) -> tuple[Path, str]:
        """(local file, sha256) of ``env``'s offline dataset (its arrays' hash,
        ``dtcore.data.dataset_sha256``: a rebuilt identical dataset keeps its key)."""
        from dtcore.data import dataset_sha256

        return self._once(self._datasets, env, self._dataset_overrides, dataset_sha256, resolve_dataset)

    def passed(self, path: Path) -> bool:
        """True when ``path`` is a dataset the caller passed (``datasets=``), not one the profile built:
        only such a file may be a pickle (``dtcore.data.load_dataset(trust_pickle=...)``)."""
        return Path(path) in self._dataset_overrides.values()

    def weights(self, body: str) -> tuple[str, str]:
        """(local folder or hub name, sha256) of a pretrained body's weights."""
        return self._once(self._weights, body, self._weight_overrides, weights_sha256, resolve_weights)

    def _once(self, done: dict, key: str, overrides: dict, content_hash, resolve) -> tuple:
        """``(where, sha256)`` of ``key``: the override hashed, else the profile's resolved."""
        if key not in done:
            if key in overrides:
                done[key] = (overrides[key], content_hash(overrides[key]))
            else:
                done[key] = resolve(self.profile, key, progress=self.progress)
        return done[key]

    def to_build(self, cells: Iterable[tuple[str, str, str]]) -> list[Path]:
        """The asset folders that resolving ``cells`` (env, backbone, variant) would build now,
        each once, in first-use order: a profile's dataset or body that is missing or fails its
        check (:func:`dtcore.assets.dataset_to_build`, ``weights_to_build``). Builds and hashes
        nothing: what a dry run says before anything is built."""
        from dtcore.assets import dataset_to_build, weights_to_build

        found: list[Path | None] = []
        for env, backbone, variant in cells:
            if env not in self._dataset_overrides and env not in self._datasets:
                found.append(dataset_to_build(self.profile, env))
            body = weights_body(backbone, variant)
            if body is not None and body not in self._weight_overrides and body not in self._weights:
                found.append(weights_to_build(self.profile.weights_of(body), self.profile))
        return [path for path in dict.fromkeys(found) if path is not None]

    def cell(self, env: str, backbone: str, variant: str) -> Assets:
        """The assets of one cell: its dataset and, when it loads any (:func:`weights_body`), the
        weights of the body it loads."""
        dataset, dataset_sha = self.dataset(env)
        body = weights_body(backbone, variant)
        if body is None:
            return Assets(dataset, dataset_sha)
        return Assets(dataset, dataset_sha, *self.weights(body))


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
