#include "core/threads.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include <cstdlib>

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

void use_fastest_blas_kernel(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr || std::getenv("NORMLAB_BLAS_REEXEC") != nullptr) return;
  const std::string core = openblas_get_corename();
  const bool has_avx512_kernel = core == "SkylakeX" || core == "Cooperlake" || core == "SapphireRapids" ||
                                 core == "skylakex" || core == "cooperlake" || core == "sapphirerapids";
  if (has_avx512_kernel) return;
  __builtin_cpu_init();
  const bool cpu_has_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
                              __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                              __builtin_cpu_supports("avx512vl");
  if (!cpu_has_avx512) return;
  setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
  setenv("NORMLAB_BLAS_REEXEC", "1", 1);  // the new image must not try again
  execv("/proc/self/exe", argv);
  // exec failed: carry on with the kernel we have (runtime_summary() shows it).
  unsetenv("OPENBLAS_CORETYPE");
}

std::string runtime_summary() {
  const BlasInfo b = blas_info();
  std::string s = "OpenBLAS (" + std::string(b.uses_openmp() ? "OpenMP" : "NOT the OpenMP build") +
                  ", kernel " + b.core + "), " + std::to_string(get_num_threads()) + " threads";
  if (!b.uses_openmp())
    s += " -- WARNING: linked against a non-OpenMP OpenBLAS; its threads will fight ours. Install "
         "libopenblas-openmp-dev and rebuild.";
  return s;
}

}  // namespace nl
