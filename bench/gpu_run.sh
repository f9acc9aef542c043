#!/usr/bin/env bash
# The GPU measurements of issue 9 in one call on a lent NVIDIA H200 (run there by the device tool,
# in the repository root, with .whl/ from bench/gpu_wheels.sh carried along). Everything it prints
# and every JSON it writes goes to $OUT (or ./gpu-out where OUT is unset).
#
#   1. the CUDA-only tests (pytest -m gpu, in tests/test_device_sampler.py): the device sampler on cuda, no host sync;
#   2. bench/paper_run.py at the paper size (12 x 768, batch 64, K = 20) with torch.compile:
#      training steps/s and MFU, evaluation episodes/s, the projected 40 x 2500 run, the ratios;
#   3. bench/evaluation.py on cuda: 10 episodes batched against one by one.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing the carried wheels failed" >&2; exit 3; }
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MUJOCO_GL=egl
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, gymnasium, mujoco; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'gymnasium', gymnasium.__version__, 'mujoco', mujoco.__version__)" | tee -a "$OUT/gpu.txt"
status=0
python3 -m pytest -q -m gpu tests/test_device_sampler.py -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.txt" || status=1
python3 bench/paper_run.py --size paper --compile --json "$OUT/paper_run.json" 2>&1 | tee "$OUT/paper_run.txt" || status=1
python3 bench/evaluation.py --device cuda --env hopper 2>&1 | tee "$OUT/evaluation.txt" || status=1
exit $status
