"""Build the runs of a grid as Slurm jobs through submitit (``dtcore claims --launcher slurm``).

One job per run that is not complete in the cache, each calling :func:`dtcore.build.build_run`,
the job of the local launcher too: the same :class:`~dtcore.runs.RunStore`, cache keys and
file locks, in a ``DTCORE_CACHE`` that every node shares (``docs/cluster.md``). The claims then
run on the submitting machine and load every run from the cache.

Resources per job come from the profile (``Profile.job``, a
:class:`~dtcore.profiles.JobResources`: a GPU and hours for ``paper``, one CPU and minutes for
``mini`` and ``smoke``), overridden field by field by :class:`SlurmOptions` (a TOML file and the
command line: partition, account, ...).

Interruptions end in a resumed run by two paths, since a run resumes from its last complete
epoch whenever it is built again:

- submitit's: Slurm sends USR2 ``signal_delay_s`` before the time limit or on preemption;
  submitit calls :meth:`RunJob.checkpoint` (the same call again) and ``scontrol requeue``s the
  job, which keeps its id (the tracker prints ``requeued by Slurm`` with the job's state; Slurm
  requeues a job whose launch was lost with its node's slurmd the same way);
- ours: a job that ends CANCELLED (``scancel``), TIMEOUT, PREEMPTED, NODE_FAIL, BOOT_FAIL or
  DEADLINE, or leaves the queue without a result, is submitted again as a new job, at most
  ``max_requeues`` times.

A job that ends FAILED or OUT_OF_MEMORY fails for good at once (the same call would fail again),
as does a run interrupted once more than ``max_requeues`` allows: it is reported with its log
path, and :attr:`LaunchResult.unavailable` hands it to the claims, which then end in an error
naming the run. Job states come from ``squeue --states=all`` (no accounting database needed),
then from the job's submitit result file once squeue forgets the job.

submitit's folder (``log_dir``) holds pickles that the jobs and this tracker unpickle, so it is
private to the user and outside the shared cache: by default ``~/.local/state/dtclaims/slurm``
(``$XDG_STATE_HOME`` if set), created with mode 0700; a folder that is not the user's or that
others can write is refused (:func:`private_log_dir`).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import shlex
import subprocess
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Protocol

import submitit
from submitit.core.utils import FailedJobError, pickle_load

from dtcore.build import build_run
from dtcore.grid import RunSpec, Selection
from dtcore.profiles import JobResources, get_profile
from dtcore.provenance import private_dir
from dtcore.runs import RunStore


@dataclass(frozen=True)
class SlurmOptions:
    """Where and how jobs are submitted; None keeps the cluster's or the profile's value."""

    partition: str | None = None      # sbatch --partition
    account: str | None = None        # sbatch --account
    qos: str | None = None            # sbatch --qos
    time_min: int | None = None       # overrides the profile's time limit, minutes
    cpus: int | None = None           # overrides the profile's CPUs per job
    gpus: int | None = None           # overrides the profile's GPUs per job
    mem_gb: float | None = None       # overrides the profile's memory per job, GB
    log_dir: str | None = None        # submitit's folder: on the file system the nodes share, private (0700)
                                      # to the user (default ~/.local/state/dtclaims/slurm)
    max_requeues: int = 3             # new submissions of an interrupted run before it fails for good
    poll_s: float = 10.0              # seconds between two squeue calls
    setup: tuple[str, ...] = ()       # shell lines the job runs first (e.g. "module load cuda")


def load_options(path: str | Path | None = None, **overrides: Any) -> SlurmOptions:
    """Options from a TOML file of :class:`SlurmOptions` fields (top level or a ``[slurm]``
    table), then ``overrides`` that are not None (the command line). An unknown key is a
    ``ValueError`` naming the file."""
    values: dict[str, Any] = {}
    if path is not None:
        data = tomllib.loads(Path(path).read_text())
        values = dict(data.get("slurm", data))
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(SlurmOptions)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{path or 'slurm options'}: unknown key(s) {unknown}; known: {', '.join(sorted(known))}")
    if "setup" in values:
        values["setup"] = tuple(values["setup"])
    return SlurmOptions(**values)


def resources(profile: str, options: SlurmOptions) -> JobResources:
    """The profile's job resources with the options' overrides."""
    base = get_profile(profile).job
    return JobResources(**{f.name: getattr(options, f.name) if getattr(options, f.name) is not None
                           else getattr(base, f.name) for f in dataclasses.fields(JobResources)})


def sbatch_parameters(res: JobResources, options: SlurmOptions, job_name: str) -> dict[str, Any]:
    """The parameters of ``submitit.SlurmExecutor.update_parameters`` for one job."""
    params: dict[str, Any] = {"job_name": job_name, "time": res.time_min, "cpus_per_task": res.cpus,
                              "stderr_to_stdout": True}
    if res.gpus:
        params["gpus_per_node"] = res.gpus
    if res.mem_gb:
        params["mem"] = f"{int(res.mem_gb * 1024)}M"
    for name in ("partition", "account", "qos"):
        if getattr(options, name):
            params[name] = getattr(options, name)
    if options.setup:
        params["setup"] = list(options.setup)
    return params


def log_dir(options: SlurmOptions) -> Path:
    """submitit's folder: job pickles and one log per job, ``<job id>_0_log.out``. Never inside
    the shared cache by default: ``$XDG_STATE_HOME/dtclaims/slurm`` (``~/.local/state/...``)."""
    if options.log_dir:
        return Path(options.log_dir).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state).expanduser() / "dtclaims" / "slurm"


def private_log_dir(path: Path) -> Path:
    """``path``, created with mode 0700 if missing; a ``PermissionError`` naming it when it is
    not the user's or others can write it (:func:`dtcore.provenance.private_dir`): the jobs and
    the tracker unpickle submitit's files there. ``log_dir`` in the Slurm options picks another."""
    return private_dir(path, "Slurm log_dir", "the jobs unpickle submitit's files there")


class RunJob(submitit.helpers.Checkpointable):
    """A Slurm job: calls ``fn(*args)`` with torch on the job's CPUs (``SLURM_CPUS_PER_TASK``).

    On USR2 (time limit near, or preemption) submitit calls the inherited ``checkpoint``, which
    submits this same call again: the run's state is in the cache, so the requeued job resumes
    from the last complete epoch.

    The job's process ends after the call, so the objects alive by then are frozen
    (``gc.freeze``): the interpreter's teardown skips a last collection over every torch and
    transformers object, about 2 s of a job's CPU (measured here: 1.7-2.0 s, 0.2 s frozen)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        import torch

        torch.set_num_threads(int(os.environ.get("SLURM_CPUS_PER_TASK", "1")))
        result = self.fn(*args)
        gc.freeze()
        return result


# ------------------------------------------------------------------------- tracking jobs

PHASES = {  # Slurm job state -> what the tracker does with it
    **dict.fromkeys(("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"),
                    "queued"),
    **dict.fromkeys(("RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "SUSPENDED", "STOPPED", "RESIZING"),
                    "running"),
    "COMPLETED": "done",
    **dict.fromkeys(("FAILED", "OUT_OF_MEMORY"), "failed"),
    **dict.fromkeys(("CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "LOST"),
                    "interrupted"),
}


def phase(state: str) -> str:
    """``queued``, ``running``, ``done``, ``failed`` or ``interrupted`` for a Slurm state
    (``CANCELLED by 0`` reads as ``CANCELLED``); an unknown state counts as running."""
    return PHASES.get(state.split()[0] if state else "", "running")


@dataclass(frozen=True)
class Task:
    """One run to build as a job: ``fn(*args)`` in a job asking for ``resources``."""

    run_id: str
    fn: Callable[..., Any]
    args: tuple
    resources: JobResources


class Backend(Protocol):
    """Submits a task as a job (with ``job_id`` and ``paths.stdout``) and reads job states."""

    def submit(self, task: Task) -> Any: ...
    def states(self, jobs: list[Any]) -> dict[str, str] | None: ...


@dataclass
class Failure:
    run_id: str
    job_id: str
    state: str          # the last job's Slurm state
    log: str            # its log file
    attempts: int       # jobs submitted for the run

    def reason(self) -> str:
        tries = f" after {self.attempts} jobs" if self.attempts > 1 else ""
        return f"its Slurm job {self.job_id} ended {self.state}{tries}; log: {self.log}"


@dataclass
class LaunchResult:
    """What a launch did: runs built, runs that failed for good, requeues, wall time."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, Failure] = field(default_factory=dict)
    requeued: int = 0
    seconds: float = 0.0
    planned: list[str] = field(default_factory=list)   # a dry run: the runs it would submit

    @property
    def unavailable(self) -> dict[str, str]:
        """Run id -> why it is missing, for ``RunStore(unavailable=...)`` / ``--unavailable-runs``."""
        return {run_id: f.reason() for run_id, f in self.failed.items()}


class SlurmUnavailableError(RuntimeError):
    """No Slurm cluster takes jobs from here: one line naming the cause and the fix."""


UNAVAILABLE_FIX = ("start the cluster or check its controller (`sinfo`; the CI cluster: `.ci/slurm-cluster.sh start`), "
                   "or build here with --launcher local; finished runs are kept and a rerun resumes")


def check_cluster() -> None:
    """A :class:`SlurmUnavailableError` unless ``sinfo`` reaches a Slurm controller."""
    try:
        proc = subprocess.run(["sinfo", "--noheader", "--format=%P"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        raise SlurmUnavailableError(f"--launcher slurm: cannot run sinfo ({err}); {UNAVAILABLE_FIX}") from None
    if proc.returncode != 0:
        cause = "; ".join(proc.stderr.strip().splitlines()) or f"exit code {proc.returncode}"
        raise SlurmUnavailableError(f"--launcher slurm: no Slurm controller answers (sinfo: {cause}); {UNAVAILABLE_FIX}")


class SubmititBackend:
    """Jobs on a real cluster: ``submitit.SlurmExecutor`` submits, ``squeue`` reports. A cluster
    that does not answer is a :class:`SlurmUnavailableError`, at once or at a submission."""

    def __init__(self, folder: Path, options: SlurmOptions) -> None:
        check_cluster()
        self.options = options
        self.executor = submitit.SlurmExecutor(folder=private_log_dir(folder), max_num_timeout=options.max_requeues)

    def submit(self, task: Task) -> Any:
        self.executor.update_parameters(**sbatch_parameters(task.resources, self.options, f"dtclaims-{task.run_id}"))
        try:
            return self.executor.submit(RunJob(task.fn), *task.args)
        except (FailedJobError, OSError) as err:
            cause = "; ".join(str(err).strip().splitlines()[:3])
            raise SlurmUnavailableError(f"--launcher slurm: sbatch could not submit {task.run_id} ({cause}); "
                                        f"{UNAVAILABLE_FIX}") from err

    def states(self, jobs: list[Any]) -> dict[str, str] | None:
        """Job id -> Slurm state; None when squeue does not answer (nothing is concluded)."""
        ids = [job.job_id for job in jobs]
        proc = subprocess.run(["squeue", "--noheader", "--states=all", "--format=%i|%T", f"--jobs={','.join(ids)}"],
                              capture_output=True, text=True)
        if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
            return None
        listed = dict(line.split("|", 1) for line in proc.stdout.split() if "|" in line)
        return {job.job_id: listed.get(job.job_id) or _state_from_result(job) for job in jobs}


def _state_from_result(job: Any) -> str:
    """The state of a job squeue no longer lists, from submitit's result file (``LOST``: none)."""
    path = job.paths.result_pickle
    if not path.exists():
        return "LOST"
    outcome = pickle_load(path)[0]
    return "COMPLETED" if outcome == "success" else "FAILED"


class Tracker:
    """Submits tasks, polls their jobs, says one line per state change, submits interrupted runs
    again (``max_requeues`` times each) and ends with a summary line."""

    def __init__(self, backend: Backend, *, max_requeues: int = 3, poll_s: float = 10.0,
                 say: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep) -> None:
        self.backend, self.max_requeues, self.poll_s, self.say, self.sleep = backend, max_requeues, poll_s, say, sleep

    def run(self, tasks: Iterable[Task]) -> LaunchResult:
        start = time.perf_counter()
        result = LaunchResult()
        live: dict[str, tuple[Task, Any, int, str]] = {}   # run id -> (task, job, attempt, last phase)
        for task in tasks:
            live[task.run_id] = (task, self._submit(task), 1, "submitted")
        try:
            while live:
                self.sleep(self.poll_s)
                states = self.backend.states([job for _, job, _, _ in live.values()])
                if states is None:
                    continue
                for run_id, (task, job, attempt, last) in list(live.items()):
                    state = states.get(job.job_id, "LOST")
                    now = phase(state)
                    if now == last:
                        continue
                    live[run_id] = (task, job, attempt, now)
                    if now in ("queued", "running"):
                        requeued = now == "queued" and last == "running"
                        result.requeued += requeued
                        self.say(self._line(run_id, job, _requeued(job, state) if requeued else now))
                        continue
                    del live[run_id]
                    if now == "done":
                        result.done.append(run_id)
                        self.say(self._line(run_id, job, "done"))
                    elif now == "interrupted" and attempt <= self.max_requeues:
                        again = self._submit(task, announce=False)
                        live[run_id] = (task, again, attempt + 1, "submitted")
                        result.requeued += 1
                        self.say(self._line(run_id, job, f"{state.split()[0]}: submitted again as job {again.job_id} "
                                            f"(requeue {attempt} of {self.max_requeues}), resumes from its last "
                                            "complete epoch"))
                    else:
                        failure = Failure(run_id, job.job_id, state.split()[0], str(job.paths.stdout), attempt)
                        result.failed[run_id] = failure
                        self.say(self._line(run_id, job, f"failed ({failure.state}); log: {failure.log}"))
        except KeyboardInterrupt:
            self.say("dtclaims: stopped watching; these jobs keep running (scancel to stop them): "
                     + " ".join(job.job_id for _, job, _, _ in live.values()))
            raise
        result.seconds = time.perf_counter() - start
        self.say(summary(result))
        return result

    def _submit(self, task: Task, announce: bool = True) -> Any:
        job = self.backend.submit(task)
        if announce:
            self.say(self._line(task.run_id, job, "submitted"))
        return job

    @staticmethod
    def _line(run_id: str, job: Any, what: str) -> str:
        return f"dtclaims: slurm job {job.job_id} {run_id}: {what}"


def _requeued(job: Any, state: str) -> str:
    """What the tracker says of a running job that Slurm put back in the queue. The cause (a
    preemption, a time limit, a launch lost when its node's slurmd died, an admin's ``scontrol
    requeue``) is not in squeue's state, so the line gives the state and where to read the reason."""
    return (f"requeued by Slurm (state {state.split()[0]}; `scontrol show job {job.job_id}` says why), "
            "resumes from its last complete epoch")


def summary(result: LaunchResult) -> str:
    """One line: runs done and failed, requeues, wall time, and each failure with its log."""
    n = len(result.done) + len(result.failed)
    line = (f"dtclaims: slurm: {n} runs in {result.seconds:.0f} s: {len(result.done)} done, "
            f"{len(result.failed)} failed, {result.requeued} requeued")
    for run_id, failure in result.failed.items():
        line += f"\n  failed {run_id}: {failure.reason()}"
    return line


# ------------------------------------------------------------------------- the grid

def grid_tasks(store: RunStore, specs: Iterable[RunSpec], profile: str, options: SlurmOptions, *, regen: bool = False,
               session: str = "", ask_cache: bool = True) -> list[Task]:
    """A task per run of ``specs`` that ``store`` does not hold complete (every one with ``regen``,
    or without ``ask_cache``: the cache keys need assets that are not built yet)."""
    sel = store.selection
    key = (sel.envs, sel.seeds, sel.backbones)
    res = resources(profile, options)
    return [Task(s.id, build_run, (profile, key, s, regen, session), res)
            for s in specs if regen or not ask_cache or not store.complete(s)]


def plan(tasks: list[Task], options: SlurmOptions, n_runs: int, unbuilt: Iterable[Path] = ()) -> str:
    """What a dry run prints: the jobs it would submit and the sbatch parameters of each; first,
    the ``unbuilt`` assets a launch would build here (then every run counts: its key hashes them)."""
    unbuilt = list(unbuilt)
    if unbuilt:
        lines = [f"dtclaims: dry run: {len(unbuilt)} asset(s) are not built yet and the run keys hash them; a launch "
                 f"builds them here first, then submits one job per run the cache lacks: at most {len(tasks)} Slurm "
                 f"job(s); nothing is built or submitted. Logs would go to {log_dir(options)}"]
        lines += [f"  builds here first: {path}" for path in unbuilt]
    else:
        lines = [f"dtclaims: dry run: would submit {len(tasks)} Slurm job(s), one per run missing from the cache "
                 f"({n_runs - len(tasks)} of {n_runs} runs cached); nothing is submitted. Logs would go to "
                 f"{log_dir(options)}"]
    for task in tasks:
        flags = " ".join(f"--{k.replace('_', '-')}={shlex.quote(str(v))}"
                         for k, v in sbatch_parameters(task.resources, options, f"dtclaims-{task.run_id}").items()
                         if k not in ("stderr_to_stdout", "setup"))
        lines.append(f"  {task.run_id}: sbatch {flags}")
    if options.setup:
        lines.append(f"  each job first runs: {'; '.join(options.setup)}")
    return "\n".join(lines)


def build_grid_on_slurm(profile: str, envs=None, seeds=None, backbones=None, *, options: SlurmOptions,
                        regen: bool = False, dry_run: bool = False, only: Collection[str] | None = None,
                        say: Callable[[str], None] = print, backend: Backend | None = None) -> LaunchResult:
    """Submit one job per run of the selected grid (of its runs whose ids ``only`` lists) missing
    from the cache, follow them to the end and return what happened. The assets are resolved here first (built when missing), as the
    cache keys need their hashes. A dry run builds and submits nothing: it prints :func:`plan`,
    naming the assets a launch would build first (and then counting every run)."""
    sel = Selection.of(get_profile(profile), envs, seeds, backbones)
    store = RunStore(profile, sel, progress=True)
    specs = [s for s in sel.specs() if only is None or s.id in only]
    unbuilt = store.resolver.to_build((s.env, s.backbone, s.variant) for s in specs) if dry_run else []
    tasks = grid_tasks(store, specs, profile, options, regen=regen, session=uuid.uuid4().hex, ask_cache=not unbuilt)
    if dry_run:
        say(plan(tasks, options, len(specs), unbuilt))
        return LaunchResult(planned=[t.run_id for t in tasks])
    say(f"dtclaims: {len(specs) - len(tasks)} of {len(specs)} runs of the {profile} grid are cached; "
        f"submitting {len(tasks)} Slurm job(s), logs in {log_dir(options)}")
    if not tasks:
        return LaunchResult()
    backend = backend or SubmititBackend(log_dir(options), options)
    return Tracker(backend, max_requeues=options.max_requeues, poll_s=options.poll_s, say=say).run(tasks)
