"""From a profile's asset references to local files: build offline assets on first use, pass real
ones through, and check the ``paper`` profile's real assets before any work.

* ``resolve_weights("asset:language-mini", profile)`` (mini's weights of the ``gpt2`` body) returns
  the body shipped with the package (``dtcore/assets/bodies/<asset key>/``) when it was built from
  exactly the profile's recipe and every file matches its recorded sha256. A shipped body that fails
  its check is restored from the git checkout's committed copy into the asset cache
  (:func:`restore_from_git`; the working tree is left as it is), never retrained while git has it;
  without one it builds the body (once, cached). Hub names (``gpt2``) and local directories pass
  through.
* ``resolve_dataset(profile, env)``: ``profile.data == "asset"`` builds the D4RL-like substitute
  of ``profile.dataset_recipe(env)``; ``"d4rl"`` returns D4RL's medium-v2 file under
  ``DTCORE_DATA_DIR`` (``dtcore.d4rl.download_d4rl``).
* ``dataset_to_build`` / ``weights_to_build`` name the asset folder that resolving would build now,
  without building it (a dry run's answer).
* ``check_paper_assets(profile, envs)`` raises one :class:`MissingAssetsError` listing every
  missing file or weight and where to put it, without calling the hub client.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import warnings
from pathlib import Path

from dtcore.assets import collect as collect_mod
from dtcore.assets import pretrain as pretrain_mod
from dtcore.assets.recipes import DatasetRecipe, PretrainRecipe
from dtcore.assets.integrity import CacheCorruptionWarning, valid_file_record
from dtcore.assets.store import PROVENANCE, asset_dir, asset_key, asset_problems, build_asset, is_built
from dtcore.provenance import sha256_bytes, sha256_file

log = logging.getLogger(__name__)

ASSET_PREFIX = "asset:"        # dtcore.profiles.ASSET_PREFIX: asset references are resolved, not passed on
DATASET_FILE = "data.hdf5"     # inside a dataset asset directory (not D4RL's name: never "D4RL")
DATASET_BUILDER = 2            # bump when collect.py changes what a recipe produces
PRETRAIN_BUILDER = 1           # bump when pretrain.py changes what a recipe produces
HUB_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PACKAGED_BODIES = Path(__file__).resolve().parent / "bodies"   # pretrained bodies shipped in the repository


class MissingAssetsError(FileNotFoundError):
    """Assets a profile needs are absent; the message lists each one and where to put it."""


# --------------------------------------------------------------------------- keys


def dataset_asset(recipe: DatasetRecipe) -> tuple[str, str, dict]:
    """(kind, name, extra) of a dataset asset; ``extra`` pins what the recipe does not say."""
    name = f"{recipe.env}__{recipe.algo}__noise{recipe.noise:g}__{recipe.steps}steps"
    extra = {"builder": DATASET_BUILDER, "n_envs": collect_mod.N_ENVS,
             "policy_sha256": collect_mod.TRUSTED_POLICY_FILES.get(recipe.agent, "")}
    return "datasets", name, extra


def pretrain_asset(recipe: PretrainRecipe, size: str = "") -> tuple[str, str, dict]:
    name = (f"{recipe.modality}{'-' + size if size else ''}__L{recipe.n_layer}-d{recipe.n_embd}-h{recipe.n_head}"
            f"__{recipe.steps}steps")
    extra = {"builder": PRETRAIN_BUILDER, "bf16": pretrain_mod.AUTOCAST_BF16, **pretrain_mod.corpus_fingerprint(recipe)}
    return "pretrained", name, extra


# --------------------------------------------------------------------------- resolve


def packaged_body(kind: str, key: str, root: Path | None = None) -> Path | None:
    """The shipped body under asset key ``key`` (in ``root``, default :data:`PACKAGED_BODIES`), if
    there is one and every file verifies; one that fails its sha256 check is named in a warning
    and not used."""
    path = (root or PACKAGED_BODIES) / key
    problems = asset_problems(path)
    if problems is None:
        return None
    if problems:
        warnings.warn(f"{path}: the shipped body fails its check ({problems[0]}); using the committed copy "
                      "from git (restored into the asset cache), or building it from its recipe where git has "
                      f"none. Restore the shipped files with `git checkout -- {path}`.",
                      CacheCorruptionWarning, stacklevel=3)
        return None
    log.info("using the shipped %s body %s (%s)", kind, key, path)
    return path


def _git(args: list[str], cwd: Path) -> bytes:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True, timeout=60, env=env).stdout


def restore_from_git(path: Path, out: Path) -> str | None:
    """Write the committed (``HEAD``) files of the shipped body folder ``path`` into ``out``: the
    commit when git has the folder and every file matches the sha256 its committed provenance
    records, else None (``out`` is then left as it was)."""
    path = Path(path)
    cwd = next(p for p in (path, *path.parents) if p.is_dir())
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], cwd).decode().strip())
        rel = path.resolve().relative_to(top.resolve()).as_posix()
        commit = _git(["rev-parse", "HEAD"], top).decode().strip()
        record = valid_file_record(json.loads(_git(["show", f"HEAD:{rel}/{PROVENANCE}"], top)).get("files"))
        if record is None:
            return None
        files = {name: _git(["show", f"HEAD:{rel}/{name}"], top) for name in record}
        if any(sha256_bytes(data) != record[name] for name, data in files.items()):
            return None
        for name, data in files.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)
    except (OSError, ValueError, AttributeError, subprocess.SubprocessError):
        return None
    log.info("restored the shipped body %s from git (commit %s)", path.name, commit[:12])
    return commit


def resolve_weights(ref: str, profile, *, root: str | Path | None = None, progress: bool = True,
                    shipped: bool = True) -> str:
    """A hub name or local directory for ``ref``; ``asset:...`` refs, whose recipe
    ``profile.weights_recipe(ref)`` hands over (this module imports no profile), are taken from
    the shipped bodies (``shipped``) or built into the cache first."""
    if not ref.startswith(ASSET_PREFIX):
        return str(Path(ref).expanduser()) if ref.startswith(("~", "/", ".")) else ref
    recipe, size = profile.weights_recipe(ref)
    kind, name, extra = pretrain_asset(recipe, size)
    key = asset_key(kind, name, recipe, extra)
    if shipped:
        found = packaged_body(kind, key, PACKAGED_BODIES)
        if found is not None:
            return str(found)

    def build(out: Path) -> dict:
        commit = restore_from_git(PACKAGED_BODIES / key, out) if shipped else None
        if commit is not None:   # a damaged shipped body: the committed bytes, not a retraining
            return {"restored_from_git": str(PACKAGED_BODIES / key), "commit": commit}
        pretrain_mod.pretrain(recipe, out, progress=progress)
        m = pretrain_mod.read_metrics(out)
        return {k: m[k] for k in ("heldout_loss_initial", "heldout_loss", "heldout_perplexity",
                                  "unigram_heldout_loss", "bits_per_token", "train_wall_s", "ms_per_step")}

    return str(build_asset(kind, name, recipe, build, extra=extra, root=root))


def resolve_dataset(profile, env: str, *, policy_dir: str | Path | None = None,
                    root: str | Path | None = None, progress: bool = True) -> Path:
    """The medium-quality dataset file of ``env`` under ``profile``, collected first if needed."""
    if profile.data == "d4rl":
        from dtcore.d4rl import download_d4rl

        return download_d4rl(env, "medium")
    if profile.data != "asset":
        raise ValueError(f"profile {profile.name!r}: data must be 'd4rl' or 'asset', got {profile.data!r}")
    recipe = profile.dataset_recipe(env)
    kind, name, extra = dataset_asset(recipe)

    def build(out: Path) -> dict:
        collect_mod.collect_dataset(recipe, out / DATASET_FILE, policy_dir=policy_dir, progress=progress)
        return json.loads(collect_mod.stats_path(out / DATASET_FILE).read_text())

    return build_asset(kind, name, recipe, build, extra=extra, root=root) / DATASET_FILE


# --------------------------------------------------------------------------- what resolving would build


def dataset_to_build(profile, env: str, *, root: str | Path | None = None) -> Path | None:
    """The asset folder :func:`resolve_dataset` would build now for ``env`` (missing, or failing
    its check); None when it would build nothing (built and verified, or D4RL's own file). Builds
    and hashes nothing."""
    if profile.data != "asset":
        return None
    recipe = profile.dataset_recipe(env)
    kind, name, extra = dataset_asset(recipe)
    path = asset_dir(kind, asset_key(kind, name, recipe, extra), root)
    return None if is_built(path) else path


def weights_to_build(ref: str, profile, *, root: str | Path | None = None) -> Path | None:
    """The asset folder :func:`resolve_weights` would build now for ``ref`` (an ``asset:`` body
    that is neither shipped nor built, or fails its check); None for a hub name or a local folder.
    Builds and hashes nothing."""
    if not ref.startswith(ASSET_PREFIX):
        return None
    recipe, size = profile.weights_recipe(ref)
    kind, name, extra = pretrain_asset(recipe, size)
    key = asset_key(kind, name, recipe, extra)
    path = asset_dir(kind, key, root)
    return None if is_built(PACKAGED_BODIES / key) or is_built(path) else path


# --------------------------------------------------------------------------- missing assets


def _hub_cached(repo_id: str) -> bool:
    """Whether the local HF cache holds ``repo_id``'s config and weights (no network call)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        def cached(fname: str) -> bool:
            return isinstance(try_to_load_from_cache(repo_id, fname), str)

        return cached("config.json") and any(cached(f) for f in HUB_WEIGHT_FILES)
    except Exception:  # noqa: BLE001 - any failure of the cache lookup means "not usable offline"
        return False


def _hub_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # noqa: BLE001
        return "~/.cache/huggingface/hub"


def _missing_weights(ref: str) -> list[str]:
    if ref.startswith(ASSET_PREFIX):
        return []  # built offline on first use
    path = Path(ref).expanduser()
    if ref.startswith(("~", "/", ".")) or path.is_dir():
        if (path / "config.json").is_file():
            return []
        return [f"weights {ref!r}: no HF-format directory (config.json + weights) at {path}"]
    if _hub_cached(ref):
        return []
    return [f"weights {ref!r}: not in the local HuggingFace cache {_hub_cache_dir()}. Put it there with "
            f"`hf download {ref}` on a machine with network access (then copy its "
            f"models--{ref.replace('/', '--')} folder into that cache, or point HF_HOME at the copy)"]


def _missing_data(profile, env: str) -> list[str]:
    if profile.data == "d4rl":
        from dtcore.d4rl import d4rl_filename, d4rl_url
        from dtcore.d4rl import data_dir as d4rl_dir

        target = d4rl_dir() / d4rl_filename(env, "medium")
        if target.is_file():
            return []
        return [f"D4RL dataset {target.name}: not found at {target}. Download {d4rl_url(env, 'medium')} "
                f"and put it there (or set DTCORE_DATA_DIR to the folder holding it)"]
    recipe = profile.dataset_recipe(env)
    kind, name, extra = dataset_asset(recipe)
    if is_built(asset_dir(kind, asset_key(kind, name, recipe, extra))):
        return []
    try:
        path = collect_mod.policy_path(recipe)
    except FileNotFoundError as err:
        return [f"behaviour policy for {env}: {err}"]
    if path.is_file():
        return _damaged_policy(env, recipe.agent, path)
    return [f"behaviour policy for {env}: {path} not found. Put rl-trained-agents' {recipe.agent} "
            f"there, or set DTCORE_POLICY_DIR to the folder holding it (docs/assets.md)"]


def _damaged_policy(env: str, agent: str, path: Path) -> list[str]:
    """The policy file at ``path`` when its sha256 is not the trusted one of ``agent`` (it would
    be refused at the dataset build, after the preflight), with how to get the right one."""
    trusted = collect_mod.TRUSTED_POLICY_FILES.get(agent)
    if trusted is None or sha256_file(path) == trusted:
        return []
    return [f"behaviour policy for {env}: {path} is damaged (its sha256 is not the trusted {trusted[:12]}…). "
            + collect_mod.restore_hint(path, agent)]


def check_paper_assets(profile, envs=None) -> None:
    """Raise one :class:`MissingAssetsError` naming every asset ``profile`` needs for ``envs``
    (default: all its environments) that is absent, and where to put it. Nothing is downloaded."""
    envs = tuple(envs) if envs is not None else profile.envs
    missing: list[str] = []
    for ref in profile.weights.values():
        missing += _missing_weights(ref)
    for env in envs:
        missing += _missing_data(profile, env)
    if missing:
        offline = " (HF_HUB_OFFLINE=1)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        lines = "\n".join(f"  - {m}" for m in missing)
        raise MissingAssetsError(
            f"profile {profile.name!r} cannot start{offline}: {len(missing)} asset(s) missing or damaged:\n{lines}\n"
            "Nothing was run. Provide them and start again"
            + (", or use --profile mini (offline assets)." if profile.data == "d4rl" else "."))
