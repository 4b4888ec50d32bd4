// Reverse-mode automatic differentiation, define-by-run.
//
// Recording. When grad mode is on and some input of a differentiable op requires grad, the op attaches a
// Node to its output: the op's name, its inputs (the graph's edges) and a backward function that maps the
// gradient of the output to one gradient per input. The backward function captures whatever the forward
// saved (for exp, the output; for matmul, both operands). It runs with grad mode off.
//
// Running backward. `out.backward(g)` sorts the graph reachable from `out` topologically (iteratively, so
// deep graphs cannot overflow the stack; children are visited in input order, so the order is
// deterministic), then walks it from the output to the leaves. For each tensor it first sums every gradient
// that reached it, then runs its hooks, then either hands the sum to its Node or, for a leaf, stores it.
//
// THE ACCUMULATION CONTRACT: gradients are ADDED into `.grad` (leaf.grad += dL/dleaf), never assigned.
// Two backward passes without zero_grad() in between give the sum of both gradients, exactly as in PyTorch;
// the optimizer's zero_grad() starts a new step. Fused kernels follow the same rule in their own backward
// functions: they write `dx += ...`, and tests pre-fill gradients to prove it.
//
// Checks. The engine checks that each gradient a Node returns has its input's shape, and throws an
// nl::Error naming the op when it does not.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../core/tensor.h"

namespace nl {

// A recorded op. `backward(grad_output)` returns one gradient per input (an undefined Tensor where an
// input needs none).
struct Node {
  std::string op;
  std::vector<Tensor> inputs;
  std::function<std::vector<Tensor>(const Tensor& grad_output)> backward;
  // Releases a long chain of nodes iteratively: a recursive chain of shared_ptr destructors would overflow
  // the stack on a graph 100k ops deep.
  ~Node();
};

// True while recording is on (the default). Thread-local.
bool grad_mode_enabled();

// Turns recording off for its lifetime: optimizer updates, evaluation, and backward functions run this way.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};
using no_grad = NoGradGuard;

// True when an op with these inputs must be recorded.
bool needs_grad(const std::vector<Tensor>& inputs);

// Records `op` on `out` when needs_grad(inputs): sets out.requires_grad and out.grad_fn. Returns out.
Tensor record(Tensor out, const char* op, std::vector<Tensor> inputs,
              std::function<std::vector<Tensor>(const Tensor&)> backward);

// Runs the backward pass from `root`, seeded with `grad_output` (same shape as root).
void run_backward(const Tensor& root, const Tensor& grad_output);

}  // namespace nl
