#include "layers/init.h"

#include <cmath>

#include "autograd/engine.h"

namespace nl::init {

Fans fans(const Tensor& t) {
  check(t.dim() >= 2, "init: fan_in and fan_out need a tensor of rank >= 2, got shape ", t.shape());
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

double gain(Nonlinearity nonlinearity, double a) {
  switch (nonlinearity) {
    case Nonlinearity::Linear:
    case Nonlinearity::Sigmoid:
      return 1.0;
    case Nonlinearity::Tanh:
      return 5.0 / 3.0;
    case Nonlinearity::Relu:
      return std::sqrt(2.0);
    case Nonlinearity::LeakyRelu:
      return std::sqrt(2.0 / (1.0 + a * a));
  }
  return 1.0;
}

void uniform_(Tensor& t, double lo, double hi, Generator* gen) {
  NoGradGuard no_record;
  t.copy_(rand(t.shape(), t.dtype(), gen, lo, hi));
}

void normal_(Tensor& t, double mean, double stddev, Generator* gen) {
  NoGradGuard no_record;
  t.copy_(randn(t.shape(), t.dtype(), gen, mean, stddev));
}

void constant_(Tensor& t, double value) {
  NoGradGuard no_record;
  t.fill_(value);
}
void zeros_(Tensor& t) { constant_(t, 0.0); }
void ones_(Tensor& t) { constant_(t, 1.0); }

namespace {
double fan_of(const Tensor& t, FanMode mode, const char* op) {
  const Fans f = fans(t);
  const int64_t fan = mode == FanMode::FanIn ? f.fan_in : f.fan_out;
  check(fan > 0, op, ": tensor of shape ", t.shape(), " has a zero fan");
  return static_cast<double>(fan);
}
}  // namespace

void kaiming_uniform_(Tensor& t, double a, FanMode mode, Nonlinearity nonlinearity, Generator* gen) {
  const double bound = gain(nonlinearity, a) * std::sqrt(3.0 / fan_of(t, mode, "kaiming_uniform_"));
  uniform_(t, -bound, bound, gen);
}

void kaiming_normal_(Tensor& t, double a, FanMode mode, Nonlinearity nonlinearity, Generator* gen) {
  normal_(t, 0.0, gain(nonlinearity, a) / std::sqrt(fan_of(t, mode, "kaiming_normal_")), gen);
}

void xavier_uniform_(Tensor& t, double g, Generator* gen) {
  const Fans f = fans(t);
  check(f.fan_in + f.fan_out > 0, "xavier_uniform_: tensor of shape ", t.shape(), " has zero fans");
  const double bound = g * std::sqrt(6.0 / static_cast<double>(f.fan_in + f.fan_out));
  uniform_(t, -bound, bound, gen);
}

void xavier_normal_(Tensor& t, double g, Generator* gen) {
  const Fans f = fans(t);
  check(f.fan_in + f.fan_out > 0, "xavier_normal_: tensor of shape ", t.shape(), " has zero fans");
  normal_(t, 0.0, g * std::sqrt(2.0 / static_cast<double>(f.fan_in + f.fan_out)), gen);
}

void default_layer_init_(Tensor& weight, Tensor& bias, Generator* gen) {
  kaiming_uniform_(weight, std::sqrt(5.0), FanMode::FanIn, Nonlinearity::LeakyRelu, gen);
  if (bias.defined()) {
    const double bound = 1.0 / std::sqrt(fan_of(weight, FanMode::FanIn, "default_layer_init_"));
    uniform_(bias, -bound, bound, gen);
  }
}

}  // namespace nl::init
