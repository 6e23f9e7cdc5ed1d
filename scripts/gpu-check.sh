#!/usr/bin/env bash
# The parity suites on a CUDA or Metal GPU, without Node: builds the core with plain CMake and runs the
# C++ checks (ibl-core-tests) against the fixtures on the CPU and on the GPU, with timings side by side.
#
#   scripts/gpu-check.sh cuda|metal|vulkan <parity-files-dir> [fixtures-dir] [device]
#
# <parity-files-dir>: made by `node scripts/make-parity-files.mjs <dir>` on any machine with Node.
# Needs the pinned llama.cpp source in deps/llama.cpp (`node scripts/llama-source.mjs`, or copy it) or
# LLAMA_CPP_DIR=<dir>. The device defaults to the first of the backend's (CUDA0, MTL0, Vulkan0).
# Checks, at f32, f16 and q8_0: the encoders from the fixtures' input tensors; the LLM's prompt logits
# and greedy tokens with the injection, with and without the kNN-cache vectors, with every layer on the
# GPU and with half of them on the CPU; where each layer's injection vector lives. Then the vision
# encoder's time at f16 on the CPU and on the GPU (ibl-driver encode).
set -euo pipefail
backend=${1:?usage: gpu-check.sh cuda|metal|vulkan <parity-files-dir> [fixtures-dir] [device]}
files=$(cd "${2:?parity files dir}" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
fixtures=$(cd "${3:-$here/../shared/fixtures}" && pwd)
case $backend in
  cuda)   opt=-DIBL_CUDA=ON;   device=${4:-CUDA0} ;;
  metal)  opt=-DIBL_METAL=ON;  device=${4:-MTL0} ;;
  vulkan) opt=-DIBL_VULKAN=ON; device=${4:-Vulkan0} ;;
  *) echo "unknown backend $backend" >&2; exit 2 ;;
esac
build=$here/build/gpu-$backend
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DIBL_BUILD_TOOLS=ON $opt \
  -DLLAMA_CPP_DIR="${LLAMA_CPP_DIR:-$here/deps/llama.cpp}" >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || sysctl -n hw.ncpu)" --target ibl-driver ibl-core-tests ggml >/dev/null
"$build/ibl-driver" info

n_layer=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['n_layers'])" "$fixtures/tiny-a/llama/params.json" 2>/dev/null || echo 2)
half=$(( n_layer / 2 + 1 ))  # gpu layers count the output layer: the last n_layer/2 blocks on the GPU
failed=0
now() { perl -MTime::HiRes=time -e 'printf "%.3f", time'; }
run() {  # label, then env assignments; prints the summary line and the time
  local label=$1; shift
  local t0 out
  t0=$(now)
  if out=$(env "$@" "$build/ibl-core-tests" "$fixtures" "${area}" 2>&1); then :; else failed=1; fi
  printf '%-44s %s  (%s s)\n' "$label" "$(echo "$out" | tail -1)" "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')"
  echo "$out" | grep '^FAIL' || true
}
for type in f32 f16 q8_0; do
  case $type in f32) cos=0.99999 rel=1e-4 tok=1 ;; f16) cos=0.9999 rel=1e9 tok=1 ;; q8_0) cos=0.999 rel=1e9 tok=0 ;; esac
  area=encoder
  for dev in cpu "$device"; do
    run "encoder $type on $dev" IBL_ENCODER_GGUF="$files/encoder-$type.gguf" IBL_ENCODER_DEVICE="$dev" IBL_ENCODER_COS=$cos IBL_ENCODER_REL=$rel
  done
  area=llm
  for layout in "cpu -1" "$device -1" "$device $half"; do
    set -- $layout
    run "llm $type on $1 (gpu layers $2)" IBL_LLM_GGUF="$files/tiny-$type-llm.gguf" IBL_BIND_GGUF="$files/tiny-$type-bind.gguf" \
      IBL_LLM_DEVICE="$1" IBL_LLM_GPU_LAYERS="$2" IBL_LLM_COS=$cos IBL_LLM_REL=$rel IBL_LLM_TOKENS=$tok
  done
done
echo "vision encoder at f16, one image (fixtures' vision_dog_image):"
for dev in cpu "$device"; do
  "$build/ibl-driver" encode "$files/encoder-f16.gguf" vision "$fixtures/tiny-a/inputs/vision_dog_image.npy" "$dev" 2>&1 >/dev/null | sed "s/^/  $dev: /"
done
if [ $failed -ne 0 ]; then echo "gpu-check: FAILED"; exit 1; fi
echo "gpu-check: every check passed on $device"
