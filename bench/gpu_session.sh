#!/usr/bin/env bash
# The GPU checks of the fast-inference work, as one prepared run for a session lent a GPU
# machine (the `device` tool: 15 minutes of device time in all, so one call, then give it back):
#
#   run(command="bash bench/gpu_session.sh", timeout_s=560)
#
# The machine's image has PyTorch with CUDA, transformers, safetensors, PyYAML and tqdm, which is
# all these need (no install: the repository runs from its root). It writes everything to $OUT:
#   gpu.txt    the device, driver and versions;
#   tests.txt  the CUDA tests (CUDA-graph replay against eager decoding) and the static-step ones;
#   bench.txt  bench/musicgen.py in bf16 at one prompt (transformers, eager, graphs, streaming);
#   batch.txt  the same at 8 prompts in one batch (how generation scales).
# Record the tables in docs/performance.md ("GPU, musicgen-small shape") with the date and device.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/wavecraft-gpu}"
mkdir -p "$OUT"
WORK="${TMPDIR:-/tmp}/wavecraft-bench"

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name(0))"
} 2>&1 | tee "$OUT/gpu.txt"

timeout 100 python3 -m pytest -q -p no:cacheprovider tests/test_generate_stream.py -k "not cli" 2>&1 | tee "$OUT/tests.txt"
timeout 250 python3 bench/musicgen.py --device cuda --dtype bfloat16 --workdir "$WORK" 2>&1 | tee "$OUT/bench.txt"
timeout 180 python3 bench/musicgen.py --device cuda --dtype bfloat16 --workdir "$WORK" --prompts 8 \
  --engines transformers,wavecraft-nograph,wavecraft 2>&1 | tee "$OUT/batch.txt"
