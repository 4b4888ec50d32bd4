// A user's program: only the installed umbrella header and the package.
#include <normlab/normlab.h>

#include <iostream>

int main() {
  nl::Tensor a = nl::tensor({{1, 2}, {3, 4}});
  nl::Tensor b = nl::matmul(a, a);  // [[7, 10], [15, 22]]
  const bool ok = b.to_vector<float>() == std::vector<float>{7, 10, 15, 22};
  std::cout << (ok ? "consumer ok" : "consumer WRONG") << "\n";
  return ok ? 0 : 1;
}
