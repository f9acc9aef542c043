"""Test the claims of Takagi (NeurIPS 2022) on pre-trained Decision Transformers and write an HTML report.

Start with `dtcore claims` (build the grid of runs, test every claim, write the report) or
`dtcore build` (only the runs). Exit status of ``claims``: pytest's (0 every claim test holds,
is inconclusive or descriptive; 1 a claim is contradicted or a test errs; 2 a bad option or a
missing asset; 5 no claim matched).
"""
# The only place that parses argv; thin over the library.

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def claim_files(claims: Path) -> list[Path]:
    """Every claim file, ``claims/test_*.py``, sorted: a new section's file is run without a list
    to update."""
    return sorted(claims.glob("test_*.py"))


def claims_command(args: argparse.Namespace, root: Path) -> list[str]:
    """The pytest command ``dtcore claims`` runs: every claim file under ``root / "claims"`` and
    the grid selection in its canonical form (``--seeds 0,1,2`` for ``--seeds 0-2``)."""
    cmd = [sys.executable, "-m", "pytest", *map(str, claim_files(root / "claims")),
           "--profile", args.profile, "-p", "no:cacheprovider"]
    if args.report is not None:   # pytest runs in the repository: the user's path, made absolute here
        cmd += ["--claims-report", str(Path(args.report).resolve())]
    if args.workers > 1:
        cmd += ["-n", str(args.workers)]
    for opt in ("envs", "seeds", "backbones"):
        if getattr(args, opt) is not None:
            cmd += [f"--{opt}", ",".join(map(str, getattr(args, opt)))]
    if args.k:
        cmd += ["-k", args.k]
    if args.regen and not args.prebuild:
        cmd.append("--regen")
    return cmd


def _cmd_claims(args: argparse.Namespace, seconds: dict[str, float] | None = None) -> int:
    """Run the claim tests of a profile under pytest and write the HTML report; ``seconds`` (when
    given) gets the wall time of the build (``build``) and of the claims (``claims``). A sequential
    look's namespace names its runs (``runs``: build only these) and each verdict's seeds
    (``member_seeds``: pytest's ``--member-seeds``)."""
    from dtcore import process_group
    from dtcore.envs import ENVS

    if getattr(args, "until_decided", False):
        return _cmd_until_decided(args)
    root = _repo_root()
    if not claim_files(root / "claims"):
        print("dtclaims: no claim file (claims/test_*.py) found; nothing was verified.")
        return 2
    envs = args.envs or ((args.k,) if args.k in ENVS else None)
    if _assets_missing(args.profile, envs):
        return 2
    unavailable: dict[str, str] = {}
    start = time.perf_counter()
    if args.prebuild:
        unavailable = _build_grid(args, envs)
        if unavailable is None:   # a dry run
            return 0
    built = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(root))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = claims_command(args, root)
        if unavailable:   # the claims that need these runs end in an error naming them
            (Path(tmp) / "unavailable.json").write_text(json.dumps(unavailable))
            cmd += ["--unavailable-runs", str(Path(tmp) / "unavailable.json")]
        if getattr(args, "member_seeds", None) is not None:
            (Path(tmp) / "member_seeds.json").write_text(json.dumps(args.member_seeds))
            cmd += ["--member-seeds", str(Path(tmp) / "member_seeds.json")]
        rc = process_group.call(cmd, cwd=root, env=env)   # Ctrl-C: pytest and its workers stop cleanly
    if seconds is not None:
        seconds.update(build=built - start, claims=time.perf_counter() - built)
    # pytest's exit status, as `pytest claims/` gives it (README "Exit status"); the report's path is
    # pytest's last line, so nothing is printed after a run that wrote one.
    if rc not in (0, 1):
        print(f"dtclaims: pytest stopped with exit code {rc}"
              + ("; no claim matched the selection" if rc == 5 else "; see the output above."))
    return rc


def _declared_claims(root: Path) -> list:
    """The claims declared in the claim files, loaded as pytest collects them (not a layer import)."""
    import importlib

    from dtcore import registry

    sys.path.insert(0, str(root))
    return registry.declared([importlib.import_module(f"claims.{p.stem}") for p in claim_files(root / "claims")])


def _selected_members(args: argparse.Namespace, seeds: tuple[int, ...]) -> set[str] | None:
    """The verdicts (``claim_id|env``) whose cells ``-k`` keeps at ``seeds``, from pytest's own
    collection of the claim files (``--selected-members``); None without ``-k``."""
    import subprocess

    if not args.k:
        return None
    root = _repo_root()
    collect = argparse.Namespace(**{**vars(args), "report": None, "workers": 1, "seeds": seeds, "backbones": None})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "members.json"
        proc = subprocess.run(claims_command(collect, root) + ["--collect-only", "-q", "--selected-members", str(out)],
                              cwd=root, env=dict(os.environ, PYTHONPATH=str(root)), capture_output=True, text=True)
        if proc.returncode not in (0, 5) or not out.exists():
            raise BadInputError(f"-k {args.k}: collecting the claims failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        members = set(json.loads(out.read_text()))
    if not members:
        raise BadInputError(f"-k {args.k} selects no claim")
    return members


def _cmd_until_decided(args: argparse.Namespace) -> int:
    """``claims --until-decided``: rounds of seeds at the looks of the sequential plan until every
    claim is decided or stopped (dtcore.sequential); the state beside the report resumes it."""
    import datetime

    from dtcore import sequential, sequential_plan
    from dtcore.profiles import get_profile
    from dtcore.provenance import git_sha
    from dtcore.runs import RunStore, runs_root

    profile = get_profile(args.profile)
    plan = sequential_plan.make_plan(profile, _declared_claims(_repo_root()), args.envs,
                                     max_seeds=args.max_seeds, budget_hours=args.budget,
                                     seconds_per_cost=sequential_plan.seconds_per_cost(runs_root()),
                                     selected=_selected_members(args, sequential_plan.seed_order(profile, args.max_seeds)))
    # Which runs are complete in the cache, for the time a look must train: asked only when the
    # cache holds a measured run (a fresh cache has none, and asking resolves the runs' assets).
    complete = None if plan.seconds_per_cost is None else RunStore(plan.profile, progress=False).complete
    print(plan.text(complete))
    if args.dry_run:
        return 0
    if args.report is None:   # every look writes the same report (a look's narrowed seeds would name their own)
        args.report = _repo_root() / "reports" / "out" / "claims-until-decided.html"
    report_json = Path(args.report).with_suffix(".json")
    state_path = Path(args.report).with_suffix(".sequential.json")
    deselected = {m: plan.left_out.get(m, f"-k {args.k} leaves it out") for m in plan.family if m not in plan.scheduled}
    afresh = "remove it to start afresh (the runs stay in the cache)"
    if state_path.exists():
        try:
            state = sequential.SequentialState.load(state_path)
        except ValueError as err:
            raise BadInputError(f"{err}; {afresh}") from err
    else:   # the plan is registered (saved, with when and at which commit) before round one
        state = sequential.start(plan.family, plan.design, args.budget, deselected)
        state.plan = {**plan.to_json(), "registered": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"), "commit": git_sha()}
        state.save(state_path)
        print(f"dtclaims: the plan is registered in {state_path} at commit {state.plan['commit']}, before round one")
    if state.design != plan.design or set(state.claims) != set(plan.family) or deselected.keys() != {
            m for m, t in state.claims.items() if t.status == sequential.DESELECTED} or \
            state.plan.get("budget_hours", args.budget) != args.budget:
        raise BadInputError(f"{state_path} holds another plan's state (its design, family, -k or budget); {afresh}")

    def round_(k: int, open_keys: list[str]):
        runs = plan.runs(k, open_keys)
        store = RunStore(plan.profile, progress=False)
        train = plan.to_train(runs, store.complete)
        eta = plan.hours(train)
        print(f"dtclaims: look {k + 1} of {len(plan.design.looks)}: {len(runs)} runs at seeds "
              f"{list(plan.look_seeds(k))} for {len(open_keys)} open claims, {len(train)} to train"
              + ("" if eta is None or not train else f", about {eta / max(args.workers, 1):.2f} h"))
        # The look builds its runs and nothing else; a claim frozen at an earlier look is run at
        # that look's seeds, so it reads no new run (dtcore.sequential_plan).
        look = argparse.Namespace(**{**vars(args), "until_decided": False, "seeds": plan.seeds[:plan.design.looks[k]],
                                     "runs": [r.id for r in runs], "member_seeds": plan.member_seeds(k, state.claims)})
        seconds: dict[str, float] = {}
        rc = _cmd_claims(look, seconds)
        if rc not in (0, 1):   # pytest's status: 1 when a claim is contradicted or a test errs (both in the JSON)
            raise RuntimeError(f"look {k + 1}: dtcore claims stopped with exit code {rc}")
        cpus = 1 if args.launcher == "local" else _slurm_cpus(args)
        hours = sequential_plan.trained_hours(store, train, cpus) + seconds["claims"] * args.workers / 3600
        return sequential_plan.observations(json.loads(report_json.read_text()).get("headline", {})), hours

    def publish(state: sequential.SequentialState) -> None:
        """The design so far into the report's JSON, and the page drawn again from it (dtcore
        imports no reports): after every look, so an interrupted run's page shows its looks."""
        import subprocess

        data = json.loads(report_json.read_text())
        data["sequential"] = sequential.report_block(state)
        report_json.write_text(json.dumps(data, indent=1, sort_keys=True))
        root = _repo_root()
        redraw = subprocess.run([sys.executable, "-m", "reports", "html", str(report_json.resolve()), "--write",
                                 str(Path(args.report).resolve())], cwd=root, env=dict(os.environ, PYTHONPATH=str(root)),
                                capture_output=True, text=True)
        if redraw.returncode != 0:
            raise RuntimeError(f"drawing {args.report} again from {report_json} failed "
                               f"(exit code {redraw.returncode}): {redraw.stderr.strip()[-2000:]}")

    def save(state: sequential.SequentialState) -> None:
        state.save(state_path)
        publish(state)

    looks_before = state.looks_done
    state = sequential.run(state, round_, save=save, say=print)
    if state.looks_done == looks_before and report_json.exists():   # resumed with nothing left to run
        publish(state)
    statuses = ("open",) + sequential.STOPS + (sequential.DESELECTED,)
    counts = {s: sum(t.status == s for t in state.claims.values()) for s in statuses}
    print("dtclaims: sequential design: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
          + f"; {state.spent_hours:.2f} CPU hours; the sequential block is in {report_json} and on {args.report}")
    return 0


def _slurm_options(args: argparse.Namespace):
    """The Slurm options of ``--launcher slurm``: ``--slurm-config`` with ``--partition`` / ``--account``."""
    from dtcore.slurm import load_options

    return load_options(args.slurm_config, partition=args.partition, account=args.account)


def _slurm_cpus(args: argparse.Namespace) -> int:
    """The CPUs each Slurm job of ``--launcher slurm`` holds (the profile's, or the options')."""
    from dtcore.slurm import resources

    return resources(args.profile, _slurm_options(args)).cpus


def _assets_missing(profile: str, envs) -> bool:
    """True, after one message listing every missing file (paper: D4RL, weights; others:
    policies), when the selected grid cannot be built here."""
    from dtcore.assets import MissingAssetsError, check_paper_assets
    from dtcore.profiles import get_profile

    try:
        check_paper_assets(get_profile(profile), envs)
    except MissingAssetsError as err:
        print(f"dtclaims: {err}")
        return True
    return False


def _build_grid(args: argparse.Namespace, envs) -> dict[str, str] | None:
    """Build the selected grid with ``--launcher``: {run id: why it is missing} for the runs that
    failed for good (local: none, a failure raises), or None after a ``--dry-run``."""
    if args.launcher == "local":
        from dtcore.build import build_grid

        build_grid(args.profile, envs, args.seeds, args.backbones, workers=args.workers, regen=args.regen,
                   only=getattr(args, "runs", None))
        return {}
    try:
        from dtcore.slurm import build_grid_on_slurm
    except ImportError as err:   # submitit is the optional extra [slurm]
        raise SystemExit(f"dtcore: --launcher slurm needs submitit ({err}): pip install -e '.[slurm]'") from None
    options = _slurm_options(args)
    try:
        result = build_grid_on_slurm(args.profile, envs, args.seeds, args.backbones, options=options,
                                     regen=args.regen, dry_run=args.dry_run, only=getattr(args, "runs", None))
    except PermissionError as err:   # a log_dir others can write (dtcore.slurm.private_log_dir)
        raise BadInputError(str(err)) from err
    return None if args.dry_run else result.unavailable


def _cmd_build(args: argparse.Namespace) -> int:
    """Build (or find cached) the selected grid, without the claims; 1 when a run failed."""
    if _assets_missing(args.profile, args.envs):
        return 2
    unavailable = _build_grid(args, args.envs)
    for run_id, reason in (unavailable or {}).items():
        print(f"dtclaims: {run_id} was not built: {reason}")
    return 1 if unavailable else 0


def _experiment(args: argparse.Namespace, assets=None):
    """The runnable experiment of ``train`` / ``evaluate``: the profile's grid cell
    (:func:`dtcore.experiment.runnable`) with its assets (resolved here unless given), then the
    flags' changes to it."""
    from dtcore.config import override, procedure
    from dtcore.experiment import Experiment, runnable, with_weights
    from dtcore.profiles import get_profile

    profile = get_profile(args.profile)
    variant = args.variant or ("K1" if args.context == 1 else "K20")
    assets = assets if assets is not None else _assets(profile, args, variant)
    cfg = runnable(profile, args.env, args.backbone, args.seed, variant, assets).config
    flags = {"context": args.context, "epochs": getattr(args, "epochs", None),
             "steps_per_epoch": getattr(args, "steps", None), "batch_size": getattr(args, "batch_size", None)}
    train = {k: v for k, v in flags.items() if v is not None}
    if getattr(args, "no_clip", False):
        train["grad_clip"] = None
    ev = {k: v for k, v in (("episodes_per_target", args.episodes), ("max_steps", args.max_steps)) if v is not None}
    cfg = override(cfg, train=train, eval=ev)
    if getattr(args, "procedure", None) is not None:
        cfg = procedure(cfg, args.procedure)
    train = {k: getattr(args, k) for k in ("sampler", "precision", "kernels") if getattr(args, k, None) is not None}
    if train.get("kernels") in ("reference", "builtin"):
        train["lanes"] = "torch"                 # those kernels draw torch's own dropout masks
    if getattr(args, "compile", False):
        train["compile"] = True
    cfg = override(cfg, train=train)
    return Experiment(cfg, with_weights(cfg.model, assets.weights), assets.dataset)


def _assets(profile, args: argparse.Namespace, variant: str):
    """The cell's assets: the profile's (built on first use) or the ``--dataset`` / ``--weights`` files."""
    from dtcore.bodies import weights_body
    from dtcore.experiment import AssetResolver

    body = weights_body(args.backbone, variant)
    resolver = AssetResolver(profile, datasets={args.env: args.dataset} if args.dataset else None,
                             weights={body: args.weights} if args.weights and body else None)
    return resolver.cell(args.env, args.backbone, variant)


class BadInputError(Exception):
    """A file or option the user gave cannot be used: ``main`` prints it as one line, rc 2 (with
    ``--debug``, the traceback of its cause)."""


def _inputs(args: argparse.Namespace, *, seed: bool = False, checkpoint: Path | None = None):
    """(experiment, dataset, model) of ``train`` / ``evaluate``: the model seeded (``seed``) or
    loaded from ``checkpoint``. A bad ``--dataset``, ``--weights`` or ``--checkpoint`` (or asset)
    is a :class:`BadInputError` naming the file and the problem."""
    from dtcore.data import load_dataset
    from dtcore.model import build_model
    from dtcore.seeding import seed_everything

    try:
        exp = _experiment(args)
        dataset = load_dataset(exp.dataset, env=exp.config.env, trust_pickle=args.trust_pickle)
        if seed:
            seed_everything(exp.config.train.seed)
        model = build_model(exp.model)
        if checkpoint is not None:
            _load_checkpoint(model, checkpoint)
    except (ValueError, OSError, KeyError) as err:
        raise BadInputError("; ".join(str(err).strip("'\"").splitlines())) from err
    return exp, dataset, model


def _load_checkpoint(model, path: Path) -> None:
    """The weights of the ``--checkpoint`` file ``path`` into ``model``. A file torch cannot read
    without running code (damaged, truncated, another format: torch's errors name no file; or
    holding objects beyond tensors and plain values) or whose tensors do not fit ``model`` is a
    :class:`BadInputError` naming it and the fix (never the run cache's "delete the run folder")."""
    from dtcore import checkpoints
    from dtcore.assets.integrity import UnsafeCacheFileError

    def first(err: Exception) -> str:   # torch's first sentence, without its advice
        text = str(err).strip().split("\n")[0].split(". ")[0]
        return f"{type(err).__name__}: {text}" if text else type(err).__name__

    fix = ("give a checkpoint `dtcore train` wrote (epoch_<n>.pt in its --out folder), with the --profile, --env, "
           "--backbone and --context it was trained with")
    try:
        ckpt = checkpoints.load(path)
    except (RuntimeError, EOFError, KeyError, UnsafeCacheFileError) as err:
        detail = "" if isinstance(err, UnsafeCacheFileError) else f"; {first(err)}"
        raise BadInputError(f"--checkpoint {path}: not a checkpoint torch can read without running code (damaged, "
                            f"truncated, another format, or holding objects beyond tensors and plain values{detail}); "
                            f"{fix}") from err
    try:
        model.load_state_dict(ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt)
    except (RuntimeError, TypeError) as err:
        raise BadInputError(f"--checkpoint {path}: its tensors do not fit the model these options build "
                            f"({first(err)}); {fix}") from err


def _cmd_train(args: argparse.Namespace) -> int:
    """Train one Decision Transformer and evaluate it after every epoch."""
    from dtcore.evaluate import evaluate
    from dtcore.train import train

    exp, dataset, model = _inputs(args, seed=True)
    cfg = exp.config
    model = model.to(_device(args))

    def evaluate_fn(m, epoch):
        return evaluate(m, cfg.eval, state_mean=dataset.state_mean, state_std=dataset.state_std,
                        context=cfg.train.context, device=_device(args))

    result = train(model, dataset, cfg, run_dir=args.out, evaluate_fn=evaluate_fn, progress=True)
    for e in result.epochs:
        returns = {t["target"]: round(sum(t["returns"]) / len(t["returns"]), 1)
                   for t in (e.eval or {}).get("targets", [])}
        print(f"epoch {e.epoch}: loss {e.train_loss_mean:.4f}, action error {e.action_error:.4f}, "
              f"mean return by target {returns}")
    print(f"checkpoints in {args.out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint written by ``train``."""
    from dtcore.envs import NORMALISATIONS
    from dtcore.evaluate import evaluate

    exp, dataset, model = _inputs(args, checkpoint=args.checkpoint)
    cfg = exp.config
    result = evaluate(model.to(_device(args)), cfg.eval, state_mean=dataset.state_mean,
                      state_std=dataset.state_std, context=cfg.train.context, device=_device(args))
    for target in cfg.eval.targets:
        ret = result.mean_return(target)
        scores = {name: round(f(cfg.env, ret), 2) for name, f in NORMALISATIONS.items()}
        print(f"target {target:g}: mean return {ret:.1f}, normalised {scores}")
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    """Roll out a behaviour policy into a D4RL-layout HDF5 file (a D4RL-like substitute)."""
    from dtcore.assets.collect import collect_dataset
    from dtcore.assets.recipes import DatasetRecipe

    policy = Path(args.policy).resolve()
    algo = args.algo or policy.parent.parent.name
    recipe = DatasetRecipe(args.env, str(policy), algo, args.noise, args.steps, args.seed)
    out = collect_dataset(recipe, args.out)
    print(f"wrote {out}")
    return 0


def _cmd_data_build(args: argparse.Namespace) -> int:
    """Build (or find cached) the profile's dataset of each selected environment in the asset
    cache, so that a later build trains from ready assets (``bench/grid.py`` times only the runs)."""
    from dtcore.experiment import resolve_dataset
    from dtcore.profiles import get_profile

    profile = get_profile(args.profile)
    envs = args.envs or profile.envs
    if _assets_missing(args.profile, envs):
        return 2
    for env in envs:
        path, sha = resolve_dataset(profile, env)
        print(f"{env}: {path} (sha256 {sha[:12]})")
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    """Rebuild a small language or image body from its profile's recipe (never the shipped copy),
    into the asset cache or ``--out``, and say whether it matches the body shipped for that recipe."""
    from dtcore.assets.pretrain import pretrain, read_metrics
    from dtcore.assets.resolve import PACKAGED_BODIES, pretrain_asset, resolve_weights
    from dtcore.assets.store import asset_key
    from dtcore.profiles import get_profile
    from dtcore.provenance import sha256_file

    profile = get_profile(args.size)
    recipe = profile.pretrain_recipe(args.modality)
    if args.corpus:
        recipe = dataclasses.replace(recipe, corpus=str(Path(args.corpus).resolve()))
    if args.out is None and args.corpus is None:
        out = Path(resolve_weights(f"asset:{args.modality}-{args.size}", profile, shipped=False))
    else:
        out = pretrain(recipe, args.out or Path(f"pretrained-{args.modality}-{args.size}"))
    kind, name, extra = pretrain_asset(recipe, args.size)
    shipped = PACKAGED_BODIES / asset_key(kind, name, recipe, extra)
    summary = {"dir": str(out), **{k: v for k, v in read_metrics(out).items() if not isinstance(v, list)}}
    if shipped.is_dir():
        summary["shipped"] = str(shipped)
        summary["weights_identical_to_shipped"] = (sha256_file(out / "model.safetensors")
                                                   == sha256_file(shipped / "model.safetensors"))
    print(json.dumps(summary, indent=1, default=str))
    return 0


def _cmd_registry(args: argparse.Namespace) -> int:
    """Check the declared criteria against ``claims/registry.json`` (exit 1 when any differs);
    ``--update`` re-registers the changed and new ones at now and HEAD (``dtcore.registry``)."""
    import datetime

    from dtcore import registry
    from dtcore.profiles import PROFILES
    from dtcore.provenance import git_sha

    root = _repo_root()
    path = root / registry.REGISTRY
    entries, code = registry.load(path), registry.current(_declared_claims(root), PROFILES)
    diffs = registry.differences(entries, code)
    for d in diffs:
        print(f"{d.kind:8s} {d.key}")
    if not args.update:
        print(f"dtcore registry: {len(diffs)} of {len(code)} entries differ from the code"
              + ("; register them with python -m dtcore registry --update" if diffs else ""))
        return 1 if diffs else 0
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    path.write_text(registry.dump(registry.updated(entries, code, now=now, commit=git_sha() or "unknown")))
    print(f"dtcore registry: {len(diffs)} entries registered at {now} in {path}")
    return 0


def _run_args(p: argparse.ArgumentParser) -> None:
    from dtcore.bodies import BODIES
    from dtcore.envs import ENVS
    from dtcore.profiles import PROFILES

    p.add_argument("--profile", default="smoke", type=_name("--profile", PROFILES), choices=tuple(PROFILES),
                   help="sizes and assets (default smoke)")
    p.add_argument("--env", default="hopper", type=_name("--env", ENVS), choices=tuple(ENVS),
                   help="the environment (default hopper)")
    p.add_argument("--backbone", default="random", type=_name("--backbone", BODIES), choices=tuple(BODIES),
                   help="the body (default random)")
    p.add_argument("--seed", type=int, default=0, help="the seed (default 0)")
    p.add_argument("--context", type=int, default=None, help="K (default: the profile's; 1 selects the K1 run)")
    p.add_argument("--variant", default=None, help="K20, K1, noclip or block<i> (default from --context)")
    p.add_argument("--dataset", default=None, help="a D4RL-layout HDF5 file (default: the profile's asset); "
                   "a pickle (.pkl) only with --trust-pickle")
    p.add_argument("--trust-pickle", dest="trust_pickle", action="store_true",
                   help="let --dataset be a pickle: loading one runs any code it holds, so only for a file you trust "
                        "(default off)")
    p.add_argument("--weights", default=None, help="a local HF-format directory or hub name for the body "
                   "(default: the profile's)")
    p.add_argument("--episodes", type=int, default=None, help="evaluation episodes per target (default: the profile's)")
    p.add_argument("--max-steps", dest="max_steps", type=int, default=None, help="evaluation episode cap (default: the profile's)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when there is one, else cpu)")


def _device(args: argparse.Namespace) -> str:
    import torch

    return args.device or ("cuda" if torch.cuda.is_available() else "cpu")


def _without_option(err: ValueError) -> str:
    """The parser's message without its leading ``--option:`` (argparse prints the option itself)."""
    return re.sub(r"^--[a-z-]+: ", "", str(err))


def _option(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type=`` from a ``dtcore.grid.parse_*`` function: its ``ValueError`` message
    (which names the option and what it accepts) becomes argparse's error, at parse time."""
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(_without_option(err)) from None
    convert.__name__ = parse.__name__
    return convert


def _name(option: str, known: Iterable[str]) -> Callable[[str], str]:
    """An argparse ``type=`` for one name among ``known`` (:func:`dtcore.grid.parse_name`: an
    unknown one is refused with the closest known name); the option's ``choices=`` lists them in
    the help."""
    from dtcore.grid import parse_name

    known = tuple(known)

    def name(text: str) -> str:
        return parse_name(option, text, known)
    return _option(name)


def build_parser() -> argparse.ArgumentParser:
    from dtcore.config import PROCEDURES
    from dtcore.envs import ENVS
    from dtcore.grid import parse_envs
    from dtcore.profiles import PROFILES

    parser = argparse.ArgumentParser(prog="dtcore", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (default off)")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error (default: one line; exit codes: 0 done, "
                             "1 a run or step failed or a claim contradicted or in error (pytest's status for "
                             "claims), 2 bad input, 130 Ctrl-C)")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("claims", help="verify the paper's claims and write the HTML report",
                       description="Verify the paper's claims on a profile's grid of runs (building the runs "
                                   "first) and write the HTML report; exits with pytest's status (0 none "
                                   "contradicted, 1 a claim contradicted or a test in error).")
    _grid_args(c, "processes that build the missing runs first (--launcher local), then pytest-xdist workers "
                  "that test the claims (-n)")
    c.add_argument("-k", default=None, metavar="EXPR",
                   help="pytest -k expression: a claim id (igpt_catastrophic), a section (sec5_3, appG3) or an "
                        "env (hopper); default: every claim. A selection writes its own report; with --until-decided, "
                        "only the verdicts it keeps are run")
    c.add_argument("--no-prebuild", dest="prebuild", action="store_false",
                   help="do not build the selected grid in parallel before the tests (they build lazily); "
                        "default: build first")
    c.add_argument("--report", type=Path, default=None, metavar="PATH",
                   help="the HTML report, relative to the current directory (the JSON is written beside it); "
                        "default reports/out/claims.html in the repository, or reports/out/claims-<selection>.html "
                        "for a run narrowed by -k, --envs, --seeds or --backbones")
    c.add_argument("--until-decided", dest="until_decided", action="store_true",
                   help="run seeds in rounds at the looks of a sequential design until every claim is decided or "
                        "stopped (docs/statistics.md, 'Sequential design'); --dry-run prints its plan only "
                        "(default off: the profile's fixed seeds)")
    c.add_argument("--budget", type=float, default=None,
                   help="with --until-decided: CPU hours (the runs trained, local or on Slurm, plus deciding the "
                        "claims: wall x workers); no round starts once they are spent (default: no budget)")
    c.add_argument("--max-seeds", dest="max_seeds", type=_positive_int, default=20,
                   help="with --until-decided: the seeds of the last look (default 20)")
    _launcher_args(c)
    c.set_defaults(func=_cmd_claims)

    b = sub.add_parser("build", help="build (or find cached) the selected grid without running the claims",
                       description="Build (or find cached) the runs of a profile's grid, without testing the "
                                   "claims; exits 1 when a run could not be built.")
    _grid_args(b, "processes that build the missing runs in parallel here (--launcher local; Slurm runs one job "
                  "per run)")
    _launcher_args(b)
    b.set_defaults(func=_cmd_build, prebuild=True)

    t = sub.add_parser("train", help="train one Decision Transformer (thin over dtcore.train.train)",
                       description="Train one Decision Transformer of a profile's grid cell and evaluate it "
                                   "after every epoch; checkpoints go to --out.")
    _run_args(t)
    t.add_argument("--epochs", type=int, default=None, help="training epochs (default: the profile's)")
    t.add_argument("--steps", type=int, default=None, help="optimiser steps per epoch (default: the profile's)")
    t.add_argument("--batch-size", dest="batch_size", type=int, default=None, help="default: the profile's")
    t.add_argument("--no-clip", dest="no_clip", action="store_true",
                   help="App. G.3: no gradient clipping (default: clip as the profile does)")
    t.add_argument("--procedure", choices=PROCEDURES, default=None,
                   help="default: the profile's (paper: fast; mini, smoke: fp32 eager training, batched "
                        "evaluation). fast: bf16 autocast, SDPA, dataset on the device, batched evaluation "
                        "; published: fp32, eager attention, host batches, one episode at a time")
    t.add_argument("--sampler", choices=("host", "device"), default=None,
                   help="host: numpy batches copied to the device (mini and smoke, as cached runs); device: "
                        "the dataset on the model's device and batches drawn there (same distribution, "
                        "another stream, another run id); overrides --procedure (default: the procedure's)")
    t.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                   help="fp32, or bf16 autocast with fp32 master weights; overrides --procedure (default: the procedure's)")
    t.add_argument("--kernels", choices=("reference", "cpu", "cpu-torch", "builtin"), default=None,
                   help="cpu: the C kernels (mini, smoke; needs a C compiler); cpu-torch: the same functions in "
                        "plain torch; builtin: fused AdamW, gelu_pytorch_tanh, eager attention, torch's dropout; "
                        "each its own run id; overrides --procedure (default: the procedure's)")
    t.add_argument("--compile", action="store_true", help="torch.compile the training forward (default off)")
    t.add_argument("--out", type=Path, required=True, help="run directory for checkpoints and log.json (required)")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a checkpoint (thin over dtcore.evaluate.evaluate)",
                       description="Evaluate a checkpoint written by `dtcore train`: mean return and normalised "
                                   "scores per return target.")
    _run_args(e)
    e.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint file written by train (required)")
    e.set_defaults(func=_cmd_evaluate)

    d = sub.add_parser("data", help="offline datasets", description="Build or collect the offline datasets "
                       "the runs train on.").add_subparsers(dest="data_command", required=True)
    dc = d.add_parser("collect", help="roll out a behaviour policy into a D4RL-layout HDF5 file",
                      description="Roll out a behaviour policy into a D4RL-layout HDF5 file (a D4RL-like "
                                  "substitute dataset).")
    dc.add_argument("--env", required=True, type=_name("--env", ENVS), choices=tuple(ENVS),
                    help="the environment (required)")
    dc.add_argument("--policy", required=True, help="an SB3 zoo agent zip (sha256 must be on the trusted list; "
                    "required)")
    dc.add_argument("--algo", default=None, help="tqc | sac | ars (default: the zip's algorithm folder)")
    dc.add_argument("--noise", type=float, required=True, help="std of the Gaussian action noise (required)")
    dc.add_argument("--steps", type=int, required=True, help="transitions, whole episodes until reached (required)")
    dc.add_argument("--seed", type=int, default=0, help="rollout seed (default 0)")
    dc.add_argument("--out", type=Path, required=True, help="the HDF5 file to write (required)")
    dc.set_defaults(func=_cmd_collect)
    db = d.add_parser("build", help="build (or find cached) the profile's datasets in the asset cache",
                      description="Build (or find cached) the profile's dataset of each environment in the "
                                  "asset cache.")
    db.add_argument("--profile", default="mini", type=_name("--profile", PROFILES), choices=tuple(PROFILES),
                    help="the profile (default mini)")
    db.add_argument("--envs", type=_option(parse_envs), default=None,
                    help="comma-separated environments (default: the profile's)")
    db.set_defaults(func=_cmd_data_build)

    pt = sub.add_parser("pretrain", help="rebuild a small language or image body from its recipe",
                        description="Rebuild a small language or image body from its profile's recipe and say "
                                    "whether it matches the shipped body.")
    pt.add_argument("--modality", required=True, help="the recipe: a PretrainRecipe.modality of the profile "
                    "(required)",
                    choices=sorted({r.modality for p in PROFILES.values() for r in p.pretrain}))
    sizes = tuple(n for n, p in PROFILES.items() if p.pretrain)
    pt.add_argument("--size", default="mini", type=_name("--size", sizes), choices=sizes,
                    help="the profile whose recipe to use (default mini)")
    pt.add_argument("--corpus", default=None, help="language: a text file instead of the recipe's corpus (default: the recipe's)")
    pt.add_argument("--out", type=Path, default=None, help="output dir (default: the asset cache)")
    pt.set_defaults(func=_cmd_pretrain)

    r = sub.add_parser("registry", help="check the claims' criteria against claims/registry.json (exit 1 if any differ)",
                       description="Check that every claim's criterion is the one registered in "
                                   "claims/registry.json before the runs; exits 1 when any differs.")
    r.add_argument("--update", action="store_true", help="register the changed and new criteria at now and HEAD "
                   "(default: only check)")
    r.set_defaults(func=_cmd_registry)
    return parser


def _grid_args(p: argparse.ArgumentParser, workers: str) -> None:
    """The grid selection of ``claims`` and ``build``, and ``--workers``, whose meaning for the
    command ``workers`` says."""
    from dtcore.bodies import BODIES
    from dtcore.grid import parse_backbones, parse_envs, parse_seeds  # the parsers pytest's options use
    from dtcore.profiles import PROFILES

    p.add_argument("--profile", default="mini", type=_name("--profile", PROFILES), choices=tuple(PROFILES),
                   help="the grid's sizes and assets: smoke (seconds, verdicts meaningless), mini (the offline CPU "
                        "analog, about 2.5 h per environment at 5 seeds on 2 cores, cold), paper (Table 3, D4RL and the real weights); default mini")
    p.add_argument("--workers", type=_positive_int, default=2,
                   help=f"{workers}, at least 1 (default 2)")
    p.add_argument("--envs", type=_option(parse_envs), default=None,
                   help="comma-separated environments, e.g. hopper,walker2d (default: the profile's)")
    p.add_argument("--seeds", type=_option(parse_seeds), default=None,
                   help="one seed (42), a range (0-9) or a comma-separated list of both (0-4,42,666); "
                        "default: the profile's")
    p.add_argument("--backbones", type=_option(parse_backbones), default=None,
                   help=f"comma-separated bodies among {','.join(BODIES)} (default: the profile's: "
                        + "; ".join(f"{n} {','.join(p.bodies)}" for n, p in PROFILES.items()) + ")")
    p.add_argument("--regen", action="store_true",
                   help="rebuild the selected runs and analyses even where cached (default: reuse the cache)")


def _launcher_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--launcher", choices=("local", "slurm"), default="local",
                   help="local: worker processes here (default); slurm: one Slurm job per missing run, "
                        "through submitit, into the shared DTCORE_CACHE (docs/cluster.md)")
    p.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="with --launcher slurm: print the jobs that would be submitted and the assets that would be "
                        "built first; build and submit nothing (default off)")
    p.add_argument("--slurm-config", dest="slurm_config", type=Path,
                   default=os.environ.get("DTCORE_SLURM_CONFIG") or None,
                   help="a TOML file of Slurm options (partition, account, qos, time_min, cpus, gpus, "
                        "mem_gb, log_dir, max_requeues, poll_s, setup); default $DTCORE_SLURM_CONFIG")
    p.add_argument("--partition", default=None, help="Slurm partition (default: the config file's)")
    p.add_argument("--account", default=None, help="Slurm account (default: the config file's)")


def _positive_int(text: str) -> int:
    """An argparse ``type=`` for counts such as ``--workers``: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer (1, 2, ...)")
    return value


def _check_grid_size(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``claims|build``: the selected grid must stay under ``dtcore.grid.MAX_GRID_RUNS`` runs."""
    from dtcore.grid import Selection
    from dtcore.profiles import get_profile

    try:
        Selection.of(get_profile(args.profile), args.envs, args.seeds, args.backbones).specs()
    except ValueError as err:
        parser.error(str(err))


def _check_launcher(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--dry-run`` and the Slurm options need ``--launcher slurm``, which needs the prebuild."""
    if args.launcher == "local":
        given = [f for f, v in (("--dry-run", args.dry_run and not getattr(args, "until_decided", False)), ("--partition", args.partition),
                                ("--account", args.account)) if v]
        if given:
            parser.error(f"{', '.join(given)} need(s) --launcher slurm")
    elif not args.prebuild:
        parser.error("--launcher slurm builds the grid before the claims: drop --no-prebuild")


def _check_claims_envs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``claims|build --envs`` must also lie in the chosen profile (a parse-time error otherwise)."""
    from dtcore.profiles import get_profile
    from dtcore.grid import parse_envs

    try:
        parse_envs(",".join(args.envs), get_profile(args.profile))
    except ValueError as err:
        parser.error(f"argument --envs: {_without_option(err)}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("claims", "build"):
        if args.envs is not None:
            _check_claims_envs(parser, args)
        if getattr(args, "until_decided", False) and args.seeds is not None:
            parser.error("--seeds: under --until-decided the looks choose the seeds; --max-seeds N sets the last look")
        _check_grid_size(parser, args)
        _check_launcher(parser, args)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    # no transformers load report per body load in any command's output (build workers inherit it)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # one line, not a traceback; caches are written atomically, so a rerun resumes
        print(f"dtcore {args.command}: interrupted (Ctrl-C); finished epochs and assets are kept, "
              "run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as err:   # bad input: rc 2; anything else (a run that failed): rc 1; one line each
        if args.debug:
            raise
        print(f"dtcore {args.command}: {_one_line(err)} (--debug for the traceback)", file=sys.stderr)
        return 2 if isinstance(err, BadInputError) else 1


def _one_line(err: Exception) -> str:
    """An error as one line: its message's lines joined (the type's name where it has none, or
    where the message alone would not say what failed)."""
    text = "; ".join(line.strip() for line in str(err).strip().splitlines() if line.strip())
    if isinstance(err, BadInputError) or (text and type(err).__module__.startswith("dtcore")):
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
