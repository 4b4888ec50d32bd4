// A user's program: only the installed umbrella header and the package.
#include <normlab/normlab.h>

#include <iostream>

int main() {
  nl::Tensor a = nl::tensor({{1, 2}, {3, 4}});
  nl::Tensor b = nl::matmul(a, a);  // [[7, 10], [15, 22]]
  bool ok = b.to_vector<float>() == std::vector<float>{7, 10, 15, 22};

  // The library's model builders, moved to float64, and a state dict round trip.
  nl::ModelConfig config;
  config.model = "mlp";
  config.mlp_hidden = {16};
  auto model = nl::build_model(config);
  model->to(nl::kFloat64).eval();
  auto copy = nl::build_model(config);
  copy->to(nl::kFloat64).eval();
  copy->load_state_dict(model->state_dict());
  const nl::Tensor x = nl::randn({2, 1, 28, 28}, nl::kFloat64);
  ok = ok && (*copy)(x).to_vector<double>() == (*model)(x).to_vector<double>();

  std::cout << (ok ? "consumer ok" : "consumer WRONG") << "\n";
  return ok ? 0 : 1;
}
