// The backward pass. See autograd/engine.h for the model and the accumulation contract.
#include "autograd/engine.h"

#include <unordered_map>
#include <unordered_set>

#include "core/kernels.h"
#include "core/ops.h"

namespace nl {
namespace {
thread_local bool g_grad_mode = true;
}

bool grad_mode_enabled() { return g_grad_mode; }
NoGradGuard::NoGradGuard() : previous_(g_grad_mode) { g_grad_mode = false; }
NoGradGuard::~NoGradGuard() { g_grad_mode = previous_; }

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_mode) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(Tensor out, const char* op, std::vector<Tensor> inputs,
              std::function<std::vector<Tensor>(const Tensor&)> backward) {
  if (!needs_grad(inputs)) return out;
  auto node = std::make_shared<Node>();
  node->op = op;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = std::move(node);
  return out;
}

Node::~Node() {
  // Take over the nodes that only this chain keeps alive, and free them one at a time.
  std::vector<std::shared_ptr<Node>> orphans;
  auto adopt = [&orphans](std::vector<Tensor>& edges) {
    for (Tensor& t : edges)
      if (t.defined() && t.impl_ptr().use_count() == 1 && t.impl()->grad_fn)
        orphans.push_back(std::move(t.impl()->grad_fn));
    edges.clear();
  };
  adopt(inputs);
  while (!orphans.empty()) {
    std::shared_ptr<Node> node = std::move(orphans.back());
    orphans.pop_back();
    if (node.use_count() == 1) adopt(node->inputs);  // its inputs are now released before it dies
  }
}

// ---- Tensor's autograd members -------------------------------------------------------------------------

Tensor& Tensor::requires_grad_(bool on) {
  check(!on || is_floating(dtype()), "requires_grad_: only float tensors can require grad, got ",
        dtype_name(dtype()));
  check(on || is_leaf(), "requires_grad_: cannot turn off requires_grad on a non-leaf tensor (use detach())");
  checked().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  const auto& g = checked().grad;
  return g ? Tensor(g) : Tensor();
}

void Tensor::set_grad(const Tensor& g) {
  if (g.defined())
    check(g.shape() == shape(), "set_grad: gradient of shape ", g.shape(), " for a tensor of shape ",
          shape());
  checked().grad = g.defined() ? g.impl_ptr() : nullptr;
}

void Tensor::zero_grad() { checked().grad = nullptr; }

void Tensor::retain_grad() {
  check(requires_grad(), "retain_grad: tensor does not require grad");
  checked().retains_grad = true;
}

void Tensor::register_hook(GradHook hook) const {
  check(requires_grad(), "register_hook: tensor does not require grad");
  checked().hooks.push_back(std::move(hook));
}

void Tensor::backward() const {
  check(numel() == 1, "backward: called without a gradient on a tensor of shape ", shape(),
        "; only a one-element output can seed itself with 1 (pass grad_output)");
  backward(ones(shape(), dtype()));
}

void Tensor::backward(const Tensor& grad_output) const { run_backward(*this, grad_output); }

// ---- the engine ----------------------------------------------------------------------------------------

namespace {

// Tensors reachable from root through grad_fn edges, in an order where every tensor comes after all the
// tensors that consume it (reverse post-order of an iterative DFS; inputs are visited in order).
std::vector<TensorImpl*> topological_order(TensorImpl* root) {
  std::vector<TensorImpl*> post;
  std::unordered_set<TensorImpl*> seen{root};
  struct Frame {
    TensorImpl* t;
    size_t next_input;
  };
  std::vector<Frame> stack{{root, 0}};
  while (!stack.empty()) {
    Frame& f = stack.back();
    const Node* node = f.t->grad_fn.get();
    if (node && f.next_input < node->inputs.size()) {
      const Tensor& in = node->inputs[f.next_input++];
      if (in.defined() && in.requires_grad() && seen.insert(in.impl()).second)
        stack.push_back({in.impl(), 0});
      continue;
    }
    post.push_back(f.t);
    stack.pop_back();
  }
  return {post.rbegin(), post.rend()};
}

// True when nothing but `g` can see its memory, so .grad may adopt it without a copy.
bool exclusively_owned(const Tensor& g) {
  const TensorImpl* im = g.impl();
  return g.impl_ptr().use_count() == 1 && im->storage.use_count() == 1 && im->offset == 0 &&
         g.is_contiguous() && im->storage->nbytes == static_cast<size_t>(g.numel()) * dtype_size(g.dtype()) &&
         !im->grad_fn;
}

void accumulate(std::shared_ptr<TensorImpl>& slot, Tensor g) {
  if (!slot) {
    // Adopt a gradient nobody else holds; otherwise take a copy, since later accumulation writes into .grad.
    slot = exclusively_owned(g) ? g.impl_ptr() : g.clone().impl_ptr();
    return;
  }
  Tensor acc(slot);
  acc.add_(g);
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& grad_output) {
  check(root.requires_grad(),
        "backward: the tensor does not require grad (no input of its graph requires grad)");
  check(grad_output.shape() == root.shape(), "backward: grad_output has shape ", grad_output.shape(),
        " but the tensor has shape ", root.shape());
  check(grad_output.dtype() == root.dtype(), "backward: grad_output is ", dtype_name(grad_output.dtype()),
        " but the tensor is ", dtype_name(root.dtype()));
  NoGradGuard no_record;

  // The pending sum of gradients for each tensor, keyed by impl; a held Tensor keeps its impl alive.
  std::unordered_map<TensorImpl*, Tensor> pending;
  pending[root.impl()] = grad_output;

  for (TensorImpl* t : topological_order(root.impl())) {
    auto it = pending.find(t);
    if (it == pending.end()) continue;  // no gradient reached it (e.g. a branch with zero contribution)
    Tensor g = std::move(it->second);
    pending.erase(it);

    for (const GradHook& hook : t->hooks) {
      Tensor replaced = hook(g);
      if (replaced.defined()) {
        check(replaced.shape() == g.shape(), "backward: a hook returned a gradient of shape ",
              replaced.shape(), " for a tensor of shape ", g.shape());
        g = replaced;
      }
    }

    Node* node = t->grad_fn.get();
    if (!node) {  // a leaf: accumulate into .grad
      accumulate(t->grad, std::move(g));
      continue;
    }
    if (t->retains_grad) accumulate(t->grad, g);

    std::vector<Tensor> grads = node->backward(g);
    check(grads.size() == node->inputs.size(), "backward of ", node->op, ": returned ", grads.size(),
          " gradients for ", node->inputs.size(), " inputs");
    for (size_t i = 0; i < grads.size(); ++i) {
      const Tensor& in = node->inputs[i];
      if (!in.defined() || !in.requires_grad() || !grads[i].defined()) continue;
      check(grads[i].shape() == in.shape(), "backward of ", node->op, ": gradient for input ", i,
            " has shape ", grads[i].shape(), " but the input has shape ", in.shape());
      auto [slot, inserted] = pending.try_emplace(in.impl(), grads[i]);
      if (!inserted) {
        // Sum into a fresh tensor: the first gradient may alias a buffer another node still holds.
        slot->second = add(slot->second, grads[i]);
      }
    }
  }
}

}  // namespace nl
