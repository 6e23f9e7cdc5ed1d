// Measurement commands of ibl-driver (used by scripts/bench.mjs and when tuning kernels).
#pragma once

#include <string>

// matmul <M> <N> <K> <threads> [type] [reps]: one ggml mul_mat of an N x K weight (f32, f16, bf16, q8_0)
// by M rows of f32 on the CPU backend; prints {"ms", "gflops", ...} as JSON (best of reps after a warm-up).
int ibl_cmd_matmul(int argc, char ** argv);

// profile <encoder.gguf> <modality> <threads> [batch] [reps] [no-flash]: the modality's trunk on a
// synthetic preprocessed input; prints the plain time and a per-op table (each node timed on its own).
// no-flash: the mul_mat attention instead of the fused one (GGML_CPU_FGEMM=0: ggml's previous matmul paths).
int ibl_cmd_profile(int argc, char ** argv);
