// How many CPU threads the core uses: one default for the CLI, the API and the C++ driver alike, and
// the bound every requested count is checked against before it reaches ggml (which asserts on a
// count it cannot serve, and spins to a near-hang when threads outnumber cores).
#pragma once

// The cores this process may use: its CPU affinity mask, capped by a cgroup CPU quota, counting
// physical cores (not SMT siblings) and, on hybrid CPUs, performance cores only. At least 1.
int ibl_threads_default();

// Logical CPUs the process may run on (affinity mask, or the machine's count).
int ibl_threads_logical();

// The largest count accepted: 4 × the logical CPUs, and never more than ggml's own limit.
int ibl_threads_max();

// 0 → the default; 1 … ibl_threads_max() → itself; anything else throws ERR_INVALID_ARG naming `what`.
int ibl_threads_resolve(int requested, const char * what = "threads");

// Starts and joins n - 1 threads so that a system that cannot create them (ulimit -u, a container's
// pids limit) gives ERR_THREADS here instead of an abort inside ggml's thread pool.
void ibl_threads_probe(int n);
