// Writing your own module takes a few lines: hold parameters (and buffers) as Tensor members, register
// their addresses, and compose library ops in forward(). This one is a learnable per-channel affine map,
// y = γ ⊙ x + β over the channel dim of (N, C, H, W), plus a buffer counting the batches it has seen.
// It then trains inside a Sequential with the library's SGD, and its state shows up in named_parameters(),
// named_buffers() and checkpoints under dotted names.
#include <cstdio>

#include <normlab/normlab.h>

using namespace nl;

struct ChannelAffine : Module {
  Tensor gamma, beta;                       // parameters, shape (C)
  Tensor batches_seen = zeros({}, kInt64);  // a buffer: saved with the model, never optimized

  explicit ChannelAffine(int64_t channels)
      : gamma(ones({channels}).requires_grad_()), beta(zeros({channels}).requires_grad_()) {
    register_parameter("gamma", &gamma);
    register_parameter("beta", &beta);
    register_buffer("batches_seen", &batches_seen);
  }

  Tensor forward(const Tensor& x) override {
    check(x.dim() == 4 && x.size(1) == gamma.size(0), "ChannelAffine: expected (N, ", gamma.size(0),
          ", H, W), got ", x.shape());
    if (is_training()) batches_seen.fill_(batches_seen.item() + 1);
    const int64_t c = gamma.size(0);
    return add(mul(x, gamma.reshape({1, c, 1, 1})), beta.reshape({1, c, 1, 1}));
  }
  std::string type_name() const override { return "ChannelAffine"; }

 protected:
  // What clone() uses: a copy made by the copy constructor (the registered tensors get their own data).
  std::shared_ptr<Module> clone_impl() const override { return copy_of(*this); }
};

int main() {
  Generator gen(1);
  Sequential net;
  net.emplace<Conv2d>(1, 4, 3, Conv2dOptions{.padding = 1, .bias = false, .generator = &gen});
  net.emplace<ChannelAffine>(4);
  net.emplace<ReLU>();
  net.emplace<GlobalAvgPool2d>();
  net.emplace<Linear>(4, 2, true, kFloat32, &gen);
  std::printf("%s", net.to_string().c_str());
  for (auto& [name, p] : net.named_parameters())
    std::printf("parameter %-14s %s\n", name.c_str(), shape_str(p.shape()).c_str());
  for (auto& [name, b] : net.named_buffers())
    std::printf("buffer    %-14s %s\n", name.c_str(), shape_str(b.shape()).c_str());

  // Class 1 images are brighter: a task the network learns in a few steps.
  const Tensor labels = randint(0, 2, {32}, &gen);
  const Tensor images = add(randn({32, 1, 6, 6}, kFloat32, &gen), labels.to(kFloat32).reshape({32, 1, 1, 1}));
  SGD opt(net.parameters(), {.lr = 0.2, .momentum = 0.9});
  for (int step = 0; step < 40; ++step) {
    opt.zero_grad();
    const Tensor logits = net(images);
    const Tensor loss = cross_entropy(logits, labels);
    loss.backward();
    opt.step();
    if (step % 10 == 0 || step == 39)
      std::printf("step %2d  loss %.4f  accuracy %.0f%%\n", step, loss.item(),
                  100 * accuracy(logits, labels));
  }
  auto* affine = static_cast<ChannelAffine*>(net[1].get());
  std::printf("ChannelAffine saw %lld batches\n",
              static_cast<long long>(affine->batches_seen.item<int64_t>()));

  // A forward hook reads what a layer produced, wherever it sits; clone() makes an independent deep copy.
  double affine_mean = 0;
  HookHandle hook = net[1]->register_forward_hook(
      [&](Module&, const Tensor&, const Tensor& out) { affine_mean = mean(out).item(); });
  net.eval();
  const std::shared_ptr<Module> copy = net.clone();
  NoGradGuard no_record;
  const bool same = (*copy)(images).to_vector<float>() == net(images).to_vector<float>();
  std::printf("ChannelAffine output mean %.4f; the clone computes the same logits: %s\n", affine_mean,
              same ? "yes" : "no");
  hook.remove();
  return same ? 0 : 1;
}
