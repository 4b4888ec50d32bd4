#include "core/threads.h"

#include <cblas.h>
#include <omp.h>

#include "core/error.h"

namespace nl {

void set_num_threads(int n) {
  check(n >= 1, "set_num_threads: expected n >= 1, got ", n);
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

BlasInfo blas_info() {
  BlasInfo info;
  info.parallel = openblas_get_parallel();
  info.core = openblas_get_corename();
  info.config = openblas_get_config();
  return info;
}

std::string runtime_summary() {
  const BlasInfo b = blas_info();
  std::string s = "OpenBLAS (" + std::string(b.uses_openmp() ? "OpenMP" : "NOT the OpenMP build") + ", kernel " +
                  b.core + "), " + std::to_string(get_num_threads()) + " threads";
  if (!b.uses_openmp())
    s += " -- WARNING: linked against a non-OpenMP OpenBLAS; its threads will fight ours. Install "
         "libopenblas-openmp-dev and rebuild.";
  return s;
}

}  // namespace nl
