#!/usr/bin/env bash
# Everything ddbench checks on a GPU, in one call of a lent device machine (the checks of
# issue #4 that a CPU cannot make): the CUDA tests (KRR-ST determinism, bit-identical resume
# after SIGKILL, one host sync per outer step; DSA/crop on CUDA) and the KRR-ST meta-step
# benchmark at the paper-cifar100 and quick shapes, with the reference-style step and the
# card's fp32 matmul throughput measured in the same run.
#
# The device image has torch but not kornia; carry it as wheels. Here, once, in the repo root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl kornia==0.9.0 kornia_rs==0.2.0
# Then one device call: command "bash benchmarks/gpu_check.sh", carry [".whl"], timeout_s 540.
# Results come back under $OUT: gpu.txt, pytest_gpu.log, bench_krrst_cuda.json, bench.log.
# Budget: ~1-2 min of tests, ~2-3 min of benchmark on an H100 (plus the machine's start).
set -uo pipefail
OUT=${OUT:-/tmp/ddbench_gpu_check}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site
fi
# no install needed: the core and the built-in plugins import from the checkout
export PYTHONPATH="$PWD:$PWD/plugins:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, kornia; print('torch', torch.__version__, 'kornia', kornia.__version__, torch.cuda.get_device_name())" \
  | tee -a "$OUT/gpu.txt"
status=0
DDBENCH_TEST_GPU=1 timeout 240 python3 -m pytest -q -p no:cacheprovider -m gpu tests/ 2>&1 | tee "$OUT/pytest_gpu.log" \
  || status=1
DDBENCH_BENCH_DEVICE=cuda timeout 240 python3 -m pytest -q -p no:cacheprovider benchmarks/test_bench_krrst.py \
  --benchmark-only -s --benchmark-json "$OUT/bench_krrst_cuda.json" 2>&1 | tee "$OUT/bench.log" || status=1
exit $status
