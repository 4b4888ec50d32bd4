// normlab-train: trains the MLP, the small CNN or a small ResNet on Fashion-MNIST with a chosen
// normalization, and reports train/test loss and accuracy after every epoch. See examples/trainer.h.
//
//   normlab-train --model cnn --norm batch --epochs 3
//   normlab-train --model cnn --norm none --lr 0.05               # same lr, no normalization
//   normlab-train --model mlp --norm batch --bn-mode-at-test train # the "forgot model.eval()" pitfall
//   normlab-train --save run.safetensors ... ; normlab-train --resume run.safetensors
#include <CLI/CLI.hpp>

#include <cstdio>

#include "trainer.h"

using namespace nl;
using namespace nl::examples;

int main(int argc, char** argv) {
  use_fastest_blas_kernel(argv);
  TrainOptions o;
  CLI::App app{"normlab-train: train an MLP, CNN or ResNet on Fashion-MNIST to study normalization"};
  app.add_option("--model", o.model.model, "mlp | cnn | resnet")->capture_default_str();
  app.add_option("--norm", o.model.norm,
                 "none | batch | layer | group | instance | rms | batchrenorm | ghost | noisy")
      ->capture_default_str();
  app.add_option("--bias", o.model.bias,
                 "biases of the hidden Linear/Conv2d layers: auto (none before a normalization layer, where "
                 "beta makes them redundant) | on | off (none in any hidden layer)")
      ->capture_default_str();
  app.add_flag(
      "!--unfused-bn-relu", o.model.fused_bn_relu,
      "with --norm batch, run BatchNorm, the ReLU after it and (in the cnn) the max pool as separate "
      "modules instead of one fused kernel (same results; to look at the pre-ReLU values with hooks, "
      "or to time the fusion)");
  app.add_option("--groups", o.model.groups, "GroupNorm groups")->capture_default_str();
  app.add_option("--ghost-batch-size", o.model.ghost_batch_size, "GhostBatchNorm virtual batch size")
      ->capture_default_str();
  app.add_option("--hidden", o.model.mlp_hidden, "MLP hidden widths")->capture_default_str();
  app.add_option("--batch-size", o.batch_size)->capture_default_str();
  app.add_option("--lr", o.lr, "peak learning rate")->capture_default_str();
  app.add_option("--momentum", o.momentum)->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay, "on weights only (not on biases, γ, β)")
      ->capture_default_str();
  app.add_option("--epochs", o.epochs)->capture_default_str();
  app.add_option("--schedule", o.schedule, "cosine (after a linear warm-up) | constant")
      ->capture_default_str();
  app.add_option("--warmup-steps", o.warmup_steps)->capture_default_str();
  app.add_option("--seed", o.seed)->capture_default_str();
  app.add_option("--threads", o.threads)->capture_default_str();
  app.add_option("--data", o.data_dir,
                 "Fashion-MNIST folder (default: $NORMLAB_FASHION_MNIST or "
                 "/usr/share/datasets/fashion-mnist)");
  app.add_option("--synthetic", o.synthetic,
                 "train on N synthetic bar images per class instead (no download)");
  app.add_option("--save", o.save, "checkpoint written after every epoch (safetensors)");
  app.add_option("--resume", o.resume, "continue the run saved in this checkpoint, with its settings");
  app.add_option("--stop-after", o.stop_after_epochs, "stop after this many epochs (continue with --resume)");
  app.add_option("--bn-mode-at-test", o.bn_mode_at_test,
                 "eval | train (train reproduces the 'forgot model.eval()' pitfall)")
      ->capture_default_str();
  app.add_option("--eval-batch-size", o.eval_batch_size,
                 "test-set batch size (small batches make --bn-mode-at-test train fail visibly)")
      ->capture_default_str();
  app.add_option("--json", o.json, "write one JSON line of metrics per epoch to this file");
  CLI11_PARSE(app, argc, argv);
  try {
    train(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "normlab-train: %s\n", e.what());
    return 1;
  }
  return 0;
}
