#!/usr/bin/env bash
# The GPU measurements of issues 9 and 17 in one call on a lent NVIDIA H100 or H200 (run there by
# the device tool, in the repository root, with .whl/ and .gpucache/ from bench/gpu_prepare.sh
# carried along). Everything it prints goes to $OUT too (or ./gpu-out where OUT is unset): eight
# files, the most a call brings back.
#
#   1. the CUDA-only tests (pytest -m gpu, in tests/test_device_sampler.py): the device sampler on cuda, no host sync;
#   2. bench/paper_run.py at the paper size (batch 64, K = 20), three ways: the random body (12 x 768,
#      one head) compiled and profiled (where the fast step's time goes, the device's busy time per
#      step); the same uncompiled, as the paper profile trains; GPT-2's shape (12 heads, gelu_new)
#      compiled. Each: training steps/s and MFU, evaluation against the sequential procedure, the
#      projected 40 x 2500 run;
#   3. bench/grid.py --build-only: the mini hopper grid with 10 seeds built cold on the GPU by
#      GRID_WORKERS processes (default 12), from the carried dataset. It is stopped after GRID_LIMIT
#      seconds (default 300, the target): its per-run lines then say how far it got. The GPU's
#      utilisation meanwhile goes to grid_gpu_util.txt, the runs' logs to grid_logs.tgz.
# Each step has its own time limit (TESTS_LIMIT, PAPER_LIMIT per paper_run, GRID_LIMIT), so one that
# fails or hangs leaves the others their time; at the defaults the whole stays under the 10 minutes
# a device call may run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing the carried wheels failed" >&2; exit 3; }
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
[ -d .gpucache ] && export DTCORE_CACHE="$PWD/.gpucache"
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
unset MUJOCO_GL   # physics only: the image has no libEGL, and MuJoCo imports its renderer when this names one
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, gymnasium, mujoco; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'gymnasium', gymnasium.__version__, 'mujoco', mujoco.__version__)" | tee -a "$OUT/gpu.txt"
nproc | sed 's/^/cpus /' | tee -a "$OUT/gpu.txt"
status=0
timeout -k 5 "${TESTS_LIMIT:-30}" python3 -m pytest -q -m gpu tests/test_device_sampler.py -p no:cacheprovider 2>&1 \
  | tee -a "$OUT/gpu.txt" || status=1
for variant in "paper_run --compile --profile 10" "paper_run_eager" "paper_run_gpt2 --compile --arch gpt2"; do
  set -- $variant
  name=$1; shift
  echo "== bench/paper_run.py --size paper $*" | tee -a "$OUT/paper_run.txt"
  timeout -k 5 "${PAPER_LIMIT:-75}" python3 bench/paper_run.py --size paper "$@" --json "$OUT/$name.json" 2>&1 \
    | tee -a "$OUT/paper_run.txt" || status=1
done
nvidia-smi dmon -s u -d 5 > "$OUT/grid_gpu_util.txt" 2>&1 &
dmon=$!
timeout -k 5 "${GRID_LIMIT:-300}" python3 bench/grid.py --envs hopper --seeds 0-9 --workers "${GRID_WORKERS:-12}" \
  --build-only --tmp /tmp 2>&1 | grep -v "Loading weights" | tee "$OUT/grid.txt" || status=1
kill "$dmon" 2>/dev/null
# The finished (and partial) runs' logs: training and evaluation seconds per epoch.
find /tmp -maxdepth 4 -path '/tmp/dtclaims-grid-*/runs/*/log.json' | tar czf "$OUT/grid_logs.tgz" -T -
uptime | tee -a "$OUT/grid.txt"
exit $status
