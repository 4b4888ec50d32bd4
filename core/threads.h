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
  int parallel = 0;          // openblas_get_parallel(): 0 serial, 1 pthreads, 2 OpenMP
  std::string core;          // the kernel OpenBLAS runs, e.g. "SkylakeX" or "Prescott"
  std::string config;        // openblas_get_config()
  bool uses_openmp() const { return parallel == 2; }
};
BlasInfo blas_info();

// One line for program headers: "OpenBLAS 0.3.21 (OpenMP, kernel SkylakeX), 2 threads". Names the problem
// when OpenBLAS is not the OpenMP build.
std::string runtime_summary();

}  // namespace nl
