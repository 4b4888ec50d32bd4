// Weight initializers. Each fills a tensor in place (no autograd), drawing from `gen` (the default
// generator when null), so a seeded Generator gives the same weights on every machine.
//
// fan_in = size(1)·receptive field, fan_out = size(0)·receptive field, receptive field = Π size(2..)
// (a Linear weight (out, in) has fan_in = in; a Conv2d weight (out, in/groups, kh, kw) has
// fan_in = in/groups·kh·kw). Formulas, as PyTorch's torch.nn.init:
//   gain(nonlinearity, a):  linear/identity/sigmoid 1, tanh 5/3, relu √2, leaky_relu √(2/(1 + a²))
//   kaiming_uniform   U(−b, b),  b = gain·√(3/fan)            fan = fan_in (default) or fan_out
//   kaiming_normal    N(0, σ²),  σ = gain/√fan
//   xavier_uniform    U(−b, b),  b = gain·√(6/(fan_in + fan_out))
//   xavier_normal     N(0, σ²),  σ = gain·√(2/(fan_in + fan_out))
// Linear and Conv2d default to PyTorch's reset_parameters(): kaiming_uniform with a = √5, which is
// U(−1/√fan_in, 1/√fan_in), for the weight, and the same bound for the bias.
#pragma once

#include <cstdint>

#include "../core/random.h"
#include "../core/tensor.h"

namespace nl::init {

enum class Nonlinearity { Linear, Sigmoid, Tanh, Relu, LeakyRelu };
enum class FanMode { FanIn, FanOut };

struct Fans {
  int64_t fan_in = 0, fan_out = 0;
};
// Needs a tensor of rank >= 2.
Fans fans(const Tensor& t);
double gain(Nonlinearity nonlinearity, double a = 0.0);

void uniform_(Tensor& t, double lo, double hi, Generator* gen = nullptr);
void normal_(Tensor& t, double mean, double stddev, Generator* gen = nullptr);
void constant_(Tensor& t, double value);
void zeros_(Tensor& t);
void ones_(Tensor& t);

void kaiming_uniform_(Tensor& t, double a = 0.0, FanMode mode = FanMode::FanIn,
                      Nonlinearity nonlinearity = Nonlinearity::LeakyRelu, Generator* gen = nullptr);
void kaiming_normal_(Tensor& t, double a = 0.0, FanMode mode = FanMode::FanIn,
                     Nonlinearity nonlinearity = Nonlinearity::LeakyRelu, Generator* gen = nullptr);
void xavier_uniform_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
void xavier_normal_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);

// PyTorch's default for Linear and Conv2d: weight U(−1/√fan_in, 1/√fan_in) (kaiming_uniform, a = √5) and,
// when bias is defined, bias from the same range.
void default_layer_init_(Tensor& weight, Tensor& bias, Generator* gen = nullptr);

}  // namespace nl::init
