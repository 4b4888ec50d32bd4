// A small CNN built from modules, trained for a few hundred steps on a synthetic task, then checkpointed
// and restored.
//
// Task: 12×12 single-channel images holding one noisy bar, horizontal, vertical or one of the two diagonals;
// the class is the orientation. Network:
//   Conv2d(1→8, 3×3) → BatchNorm2d → ReLU → MaxPool2d(2) → Conv2d(8→16, 3×3) → BatchNorm2d → ReLU
//   → GlobalAvgPool2d → Dropout(0.1) → Linear(16→4)
// The convs are built with biases and then stripped of them with remove_biases_before_normalization (a bias
// before BatchNorm cancels exactly). SGD with Nesterov momentum, weight decay only on weights
// (split_decay_groups), warm-up then cosine learning rate, global-norm gradient clipping. At the end the
// model and optimizer are saved to a safetensors checkpoint, reloaded into a fresh model, and the two are
// checked to agree bit for bit.
//
// Usage: normlab-small-cnn [checkpoint path, default small_cnn.safetensors]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include <normlab/normlab.h>

using namespace nl;

namespace {

constexpr int64_t kSize = 12, kClasses = 4;

// One batch of bar images with labels.
void make_batch(int64_t n, Generator& gen, Tensor& images, Tensor& labels) {
  images = randn({n, 1, kSize, kSize}, kFloat32, &gen, 0.0, 0.3);
  labels = randint(0, kClasses, {n}, &gen);
  float* px = images.data<float>();
  const int64_t* py = labels.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t offset = gen.next_int(2, kSize - 2);
    for (int64_t k = 0; k < kSize; ++k) {
      int64_t r = 0, c = 0;
      switch (py[i]) {
        case 0:
          r = offset, c = k;
          break;  // horizontal
        case 1:
          r = k, c = offset;
          break;  // vertical
        case 2:
          r = k, c = k;
          break;  // diagonal
        default:
          r = k, c = kSize - 1 - k;
          break;  // anti-diagonal
      }
      px[(i * kSize + r) * kSize + c] += 1.0f;
    }
  }
}

std::shared_ptr<Sequential> make_model(uint64_t seed) {
  Generator gen(seed);
  auto net = std::make_shared<Sequential>();
  net->emplace<Conv2d>(1, 8, 3, Conv2dOptions{.padding = 1, .generator = &gen});
  net->emplace<BatchNorm2d>(8);
  net->emplace<ReLU>();
  net->emplace<MaxPool2d>(2);
  net->emplace<Conv2d>(8, 16, 3, Conv2dOptions{.padding = 1, .generator = &gen});
  net->emplace<BatchNorm2d>(16);
  net->emplace<ReLU>();
  net->emplace<GlobalAvgPool2d>();
  net->emplace<Dropout>(0.1);
  net->emplace<Linear>(16, kClasses, true, kFloat32, &gen);
  return net;
}

}  // namespace

int main(int argc, char** argv) {
  // The checkpoint goes to the system's temporary folder unless a path is given.
  const std::string path =
      argc > 1 ? argv[1]
               : (std::filesystem::temp_directory_path() / "normlab_small_cnn.safetensors").string();
  std::printf("normlab small CNN: bar orientations, 12x12\n%s\n", runtime_summary().c_str());
  manual_seed(3);  // the dropout masks come from the default generator

  auto net = make_model(1);
  for (const std::string& name : remove_biases_before_normalization(*net))
    std::printf("removed useless bias %s\n", name.c_str());
  std::printf("%s", net->to_string().c_str());

  const int steps = 300, warmup = 20;
  SGD opt(split_decay_groups(*net, 5e-4), {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  opt.set_schedule(sequence({linear_warmup(warmup, 0.1), cosine_schedule(steps - warmup)}, {warmup}));

  Generator data(42);
  const auto start = std::chrono::steady_clock::now();
  for (int step = 0; step < steps; ++step) {
    Tensor x, y;
    make_batch(64, data, x, y);
    opt.zero_grad();
    const Tensor logits = (*net)(x);
    const Tensor loss = cross_entropy(logits, y, /*label_smoothing=*/0.05);
    loss.backward();
    const double grad_norm = clip_grad_norm_(net->parameters(), 5.0);
    const double lr = opt.current_lr();
    opt.step();
    if (step % 50 == 0 || step == steps - 1)
      std::printf("step %3d  lr %.4f  loss %.4f  grad norm %6.3f  batch accuracy %5.1f%%\n", step, lr,
                  loss.item(), grad_norm, 100 * accuracy(logits, y));
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  net->eval();
  Generator test_data(7);
  Tensor tx, ty;
  make_batch(1000, test_data, tx, ty);
  Tensor test_logits;
  {
    NoGradGuard no_record;
    test_logits = (*net)(tx);
  }
  std::printf("held-out accuracy %.1f%% after %d steps in %.2f s\n", 100 * accuracy(test_logits, ty), steps,
              seconds);

  save_checkpoint(path, *net, opt, {{"example", "small_cnn"}});
  auto restored = make_model(99);
  remove_biases_before_normalization(*restored);
  SGD restored_opt(split_decay_groups(*restored, 5e-4), {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  load_checkpoint(path, *restored, restored_opt);
  restored->eval();
  NoGradGuard no_record;
  const bool same = (*restored)(tx).to_vector<float>() == test_logits.to_vector<float>();
  std::printf("checkpoint %s: restored model (step %lld) %s\n", path.c_str(),
              static_cast<long long>(restored_opt.step_count()), same ? "matches bit for bit" : "DIFFERS");
  return same ? 0 : 1;
}
