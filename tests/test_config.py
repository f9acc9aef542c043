"""dtcore.config: the config hash is the key of every cached run, so a field added to a config
after release must leave the hash of every config that keeps its default unchanged."""

from __future__ import annotations

import dataclasses

import pytest

from dtcore.envs import env_spec
from dtcore.config import ADDED_FIELDS, config_hash, fast_procedure, published_procedure, run_id, to_dict
from dtcore.profiles import MINI, PAPER, experiment
from dtcore.train import resume_key

# Regression values computed before TrainConfig.sampler existed (issue 9): the cache keys users hold.
PAPER_RANDOM = ("hopper__random__seed666__K20__ffc25bd9", "71278b0072343173")
MINI_GPT2 = ("walker2d__gpt2__seed1__K1__540eee9b", "60b2f95d18db45df")


def paper_random():
    """The paper profile's hopper random-init run as it was configured when the regression value was
    taken (fp32, host sampler: the paper profile has trained by the fast path since)."""
    cfg = experiment(PAPER, "hopper", "random", 666, "K20")
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision="fp32", sampler="host"))


def mini_gpt2():
    """A mini walker2d K1 run as it was configured when the regression value was taken (5 epochs,
    the reference kernels, both targets evaluated: since then the mini K1 length has become 7 by
    the learning curve, mini trains on the CPU kernels with SplitMix64 lanes and evaluates the
    reported target only)."""
    cfg = experiment(MINI, "walker2d", "gpt2", 1, "K1", dataset="asset:walker2d-mini", dataset_sha256="ab" * 32,
                     weights={"gpt2": "/w/lang", "igpt": "/w/img"}, weights_sha256="cd" * 32)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=5, kernels="reference", lanes="torch"),
                               eval=dataclasses.replace(cfg.eval, targets=env_spec("walker2d").targets))


def with_sampler(cfg, sampler: str):
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, sampler=sampler))


@pytest.mark.parametrize("make, expected", [(paper_random, PAPER_RANDOM), (mini_gpt2, MINI_GPT2)])
def test_a_config_with_the_host_sampler_keeps_the_run_id_and_resume_key_of_before_the_field(make, expected):
    cfg = make()
    assert cfg.train.sampler == "host"
    assert (run_id(cfg), resume_key(cfg)) == expected
    assert (run_id(with_sampler(cfg, "host")), resume_key(with_sampler(cfg, "host"))) == expected


@pytest.mark.parametrize("make, expected", [(paper_random, PAPER_RANDOM), (mini_gpt2, MINI_GPT2)])
def test_the_device_sampler_is_another_run(make, expected):
    cfg = with_sampler(make(), "device")
    assert run_id(cfg) != expected[0] and resume_key(cfg) != expected[1]
    assert run_id(cfg).rsplit("__", 1)[0] == expected[0].rsplit("__", 1)[0]  # only the hash moves


@pytest.mark.parametrize("make, expected", [(paper_random, PAPER_RANDOM), (mini_gpt2, MINI_GPT2)])
def test_the_cpu_kernels_are_another_run(make, expected):
    cfg = make()
    fast = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, kernels="cpu"))
    assert run_id(fast) != expected[0] and resume_key(fast) != expected[1]
    assert to_dict(fast)["train"]["kernels"] == "cpu" and to_dict(cfg)["train"]["kernels"] == "reference"


@pytest.mark.parametrize("make", [paper_random, mini_gpt2])
def test_the_c_kernels_their_plain_torch_form_and_the_builtin_kernels_are_three_runs(make):
    cfg = make()
    ids = {k: run_id(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, kernels=k)))
           for k in ("reference", "cpu", "cpu-torch", "builtin")}
    assert len(set(ids.values())) == 4, ids        # whether C kernels trained a run is in its id


@pytest.mark.parametrize("make", [paper_random, mini_gpt2])
def test_splitmix64_lanes_are_another_run_and_torch_lanes_keep_the_cpu_kernels_id(make):
    cpu = make()
    cpu = dataclasses.replace(cpu, train=dataclasses.replace(cpu.train, kernels="cpu"))
    torch_lanes = dataclasses.replace(cpu, train=dataclasses.replace(cpu.train, lanes="torch"))
    splitmix = dataclasses.replace(cpu, train=dataclasses.replace(cpu.train, lanes="splitmix64"))
    assert run_id(torch_lanes) == run_id(cpu) and resume_key(torch_lanes) == resume_key(cpu)
    assert run_id(splitmix) != run_id(cpu) and resume_key(splitmix) != resume_key(cpu)
    assert to_dict(splitmix)["train"]["lanes"] == "splitmix64"


def test_the_saved_config_still_names_every_field_added_ones_included():
    assert to_dict(paper_random())["train"]["sampler"] == "host"
    assert config_hash(paper_random(), length=64) != config_hash(with_sampler(paper_random(), "device"), length=64)


def test_every_added_field_exists_with_the_default_it_was_added_with():
    for cls, added in ADDED_FIELDS.items():
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for name, default in added.items():
            assert name in defaults and defaults[name] == default, (cls.__name__, name)


def test_the_paper_profile_is_the_fast_path_and_the_published_procedure_changes_only_how_it_runs():
    for variant in ("K20", "K1", "block3", "noclip"):
        cfg = experiment(PAPER, "walker2d", "random", 42, variant)
        assert fast_procedure(cfg) == cfg  # the paper profile trains by the fast path
        published = published_procedure(cfg)
        assert (published.train.precision, published.train.sampler, published.train.compile) == ("fp32", "host", False)
        assert published.model.attn_implementation == "eager" and published.eval.batched is False
        # what is computed stays: everything else equal, field by field
        same = lambda a, b, drop: {k: v for k, v in to_dict(a).items() if k not in drop} == {  # noqa: E731
            k: v for k, v in to_dict(b).items() if k not in drop}
        assert same(cfg.train, published.train, {"precision", "sampler", "compile"})
        assert same(cfg.model, published.model, {"attn_implementation"})
        assert same(cfg.eval, published.eval, {"batched"})
        assert run_id(published) != run_id(cfg)
        assert fast_procedure(published) == cfg


def test_the_cpu_profiles_train_on_the_cpu_kernels_and_evaluate_only_the_reported_target():
    mini, paper = experiment(MINI, "hopper", "gpt2", 0, "K20"), experiment(PAPER, "hopper", "gpt2", 0, "K20")
    assert (mini.train.kernels, paper.train.kernels) == ("cpu", "reference")
    assert (mini.train.lanes, paper.train.lanes) == ("splitmix64", "torch")
    assert mini.eval.targets == env_spec("hopper").targets[:1]
    assert paper.eval.targets == env_spec("hopper").targets and len(paper.eval.targets) == 2
