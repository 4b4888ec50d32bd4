// Threads and the BLAS library.
//
// normlab links the OpenMP build of OpenBLAS, so OpenBLAS and our own OpenMP loops share one thread pool.
// set_num_threads(n) sets both together.
#pragma once

#include <string>

namespace nl {

void set_num_threads(int n);
int get_num_threads();

struct BlasInfo {
  int parallel = 0;    // openblas_get_parallel(): 0 serial, 1 pthreads, 2 OpenMP
  std::string core;    // the kernel OpenBLAS runs, e.g. "SkylakeX" or "Prescott"
  std::string config;  // openblas_get_config()
  bool uses_openmp() const { return parallel == 2; }
};
BlasInfo blas_info();

// Debian's OpenBLAS 0.3.21 may not recognise a recent AVX-512 CPU and fall back to a slow generic kernel
// ("Prescott", ~5x slower sgemm). OpenBLAS reads OPENBLAS_CORETYPE only when it loads, before main(), so a
// program that wants the fast kernel must set it and re-execute itself. Call this first thing in main():
// when OPENBLAS_CORETYPE is unset, OpenBLAS runs a kernel without AVX-512, and the CPU has the AVX-512
// subsets SkylakeX needs (F, CD, BW, DQ, VL), it sets OPENBLAS_CORETYPE=SkylakeX and execs the program again
// with the same arguments. It never forces a kernel the CPU lacks, and never loops. Returns normally
// otherwise (and when the re-exec fails).
void use_fastest_blas_kernel(char** argv);

// One line for program headers: "OpenBLAS 0.3.21 (OpenMP, kernel SkylakeX), 2 threads". Names the problem
// when OpenBLAS is not the OpenMP build.
std::string runtime_summary();

}  // namespace nl
