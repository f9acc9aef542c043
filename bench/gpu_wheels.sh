#!/usr/bin/env bash
# Fetch, here (PyPI reachable), the wheels that the lent NVIDIA H200 machine's Python lacks, into
# .whl/ (git-ignored), for Python 3.12 on x86-64 Linux. The H200 image already has torch,
# transformers, h5py, scipy, matplotlib, jinja2, tqdm, filelock, hypothesis and pytest
# (../.library/device/KINDS.md); what dtcore needs beyond them is gymnasium and MuJoCo, and the
# image's transformers (5.17) is older than the one pinned here, so 5.23.0 travels too (its own
# needs, huggingface-hub >= 1.31, tokenizers 0.23, safetensors 0.8, are in the image).
#
#   bash bench/gpu_wheels.sh            # then, with the device tool: carry [".whl"],
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
ls -l .whl
du -sh .whl
