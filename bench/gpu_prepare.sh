#!/usr/bin/env bash
# Prepare, here, what bench/gpu_run.sh needs on a lent NVIDIA GPU machine (no network there):
#
# 1. .whl/: the wheels its Python 3.12 on x86-64 Linux lacks. The image already has torch,
#    transformers, h5py, scipy, matplotlib, jinja2, tqdm, filelock, hypothesis and pytest
#    (../.library/device/KINDS.md); dtcore needs gymnasium and MuJoCo beyond them, and the image's
#    transformers (5.17) is older than the one pinned here, so 5.23.0 travels too (its own needs,
#    huggingface-hub >= 1.31, tokenizers 0.23, safetensors 0.8, are in the image).
# 2. .gpucache/: a cache holding the mini profile's hopper dataset (built here first if your cache
#    lacks it), so the mini grid there trains at once. The mini bodies ship in dtcore/assets.
#
#   bash bench/gpu_prepare.sh           # then, with the device tool: carry [".whl", ".gpucache"],
#                                       # command "bash bench/gpu_run.sh"  (docs/benchmarks.md)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
mkdir -p .whl
# Pinned to the versions of pyproject.toml; their own needs that the image lacks follow them.
WHEELS=(gymnasium==1.4.0 farama-notifications==0.0.6 mujoco==4.0.0 mujoco-core==4.0.0
        mujoco-studio==4.0.0 glfw==2.11.0 pyopengl==3.1.10 websockets==15.0.1 transformers==5.23.0)
for spec in "${WHEELS[@]}"; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$spec"
done
dataset=$("$PY" -c 'from dtcore.profiles import MINI; from dtcore.runs import resolve_dataset
print(resolve_dataset(MINI, "hopper")[0].parent)')
rm -rf .gpucache
mkdir -p .gpucache/assets/datasets
cp -r "$dataset" .gpucache/assets/datasets/
du -sh .whl .gpucache
