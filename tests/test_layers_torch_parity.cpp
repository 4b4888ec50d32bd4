// Parity with PyTorch: fixtures written by tests/data/torch/make_fixtures.py (PyTorch 1.13, float64) hold
// inputs, upstream gradients and PyTorch's outputs, gradients and running statistics. normlab runs the same
// computation here and must agree. PyTorch is not needed to run this test, only to regenerate the fixtures.
#include <catch2/catch.hpp>
#include <string>

#include "autograd/engine.h"
#include "core/npy.h"
#include "layers/conv.h"
#include "layers/loss.h"
#include "layers/normalization.h"
#include "layers/pooling.h"
#include "optim/sgd.h"
#include "test_util.h"

using namespace nl;
using test::allclose;

namespace {

Tensor fixture(const std::string& name) {
  return load_npy(std::string(NORMLAB_TEST_DATA) + "/torch/" + name + ".npy");
}

// Replaces the module's parameter `name` by PyTorch's value (float64, requiring grad).
void set_param(Module& m, const std::string& name, const std::string& prefix) {
  Tensor* p = m.find_tensor(name);
  REQUIRE(p != nullptr);
  *p = fixture(prefix + "_param_" + name).requires_grad_();
}

// The layer_case of make_fixtures.py: three training steps (outputs, gradients, running statistics), then
// eval (with eval_backward, its gradients too: constant statistics, as in a frozen BatchNorm).
void check_layer(Module& layer, const std::string& prefix, const std::vector<std::string>& params,
                 const std::vector<std::string>& buffers, double running_tol = 1e-6,
                 bool eval_backward = false) {
  for (const std::string& p : params) set_param(layer, p, prefix);
  layer.train();
  for (int s = 0; s < 3; ++s) {
    INFO(prefix << " training step " << s);
    const std::string k = std::to_string(s);
    Tensor x = fixture(prefix + "_x" + k).requires_grad_();
    layer.zero_grad();
    const Tensor y = layer.forward(x);
    CHECK(allclose(y, fixture(prefix + "_y" + k), 1e-10, 1e-10));
    y.backward(fixture(prefix + "_g" + k));
    CHECK(allclose(x.grad(), fixture(prefix + "_dx" + k), 1e-9, 1e-10));
    for (const std::string& p : params) {
      INFO("gradient of " << p);
      CHECK(allclose(layer.find_tensor(p)->grad(), fixture(prefix + "_d" + p + k), 1e-9, 1e-10));
    }
    for (const std::string& b : buffers) {
      INFO("buffer " << b);  // running statistics are float32 buffers, as in a float32 model
      CHECK(allclose(layer.find_tensor(b)->to(kFloat64), fixture(prefix + "_" + b + k), running_tol, 1e-6));
    }
  }
  layer.eval();
  INFO(prefix << " eval");
  if (!eval_backward) {
    NoGradGuard no_record;
    CHECK(allclose(layer.forward(fixture(prefix + "_xeval")), fixture(prefix + "_yeval"), 1e-6, 1e-6));
    return;
  }
  // The running statistics are float32, so eval results agree to float32 precision.
  Tensor x = fixture(prefix + "_xeval").requires_grad_();
  layer.zero_grad();
  const Tensor y = layer.forward(x);
  CHECK(allclose(y, fixture(prefix + "_yeval"), 1e-6, 1e-6));
  y.backward(fixture(prefix + "_geval"));
  CHECK(allclose(x.grad(), fixture(prefix + "_dxeval"), 1e-6, 1e-6));
  for (const std::string& p : params) {
    INFO("gradient of " << p);
    CHECK(allclose(layer.find_tensor(p)->grad(), fixture(prefix + "_d" + p + "eval"), 1e-5, 1e-5));
  }
}

}  // namespace

TEST_CASE("PyTorch parity: BatchNorm2d and BatchNorm1d (momentum 0.1 and cumulative)", "[parity][norm]") {
  BatchNorm2d bn2d(3);
  check_layer(bn2d, "bn2d", {"weight", "bias"}, {"running_mean", "running_var"});
  BatchNorm1d bn1d(5);
  check_layer(bn1d, "bn1d", {"weight", "bias"}, {"running_mean", "running_var"});
  BatchNormOptions cma;
  cma.momentum = std::nullopt;
  BatchNorm1d bn_cma(4, cma);
  check_layer(bn_cma, "bn1d_cma", {"weight", "bias"}, {"running_mean", "running_var"});
}

TEST_CASE("PyTorch parity: LayerNorm, GroupNorm, InstanceNorm2d", "[parity][norm]") {
  LayerNorm ln(Shape{3, 4});
  check_layer(ln, "ln", {"weight", "bias"}, {});
  GroupNorm gn(2, 6);
  check_layer(gn, "gn", {"weight", "bias"}, {});
  InstanceNormOptions o;
  o.affine = true;
  o.track_running_stats = true;
  InstanceNorm2d in(3, o);
  check_layer(in, "in2d", {"weight", "bias"}, {"running_mean", "running_var"});
}

TEST_CASE("PyTorch parity: BatchNorm1d on (N, C, L), batch statistics only, no affine, InstanceNorm1d",
          "[parity][norm]") {
  BatchNorm1d bn1d(4);
  check_layer(bn1d, "bn1d_3d", {"weight", "bias"}, {"running_mean", "running_var"});
  BatchNormOptions batch_stats;  // PyTorch's affine=False, track_running_stats=False: eval uses the batch too
  batch_stats.affine = false;
  batch_stats.track_running_stats = false;
  BatchNorm2d bn2d(3, batch_stats);
  check_layer(bn2d, "bn2d_batchstats", {}, {});
  InstanceNorm1d in1d(3);  // PyTorch's defaults: no affine, no running statistics
  check_layer(in1d, "in1d", {}, {});
  GroupNormOptions no_affine;
  no_affine.affine = false;
  GroupNorm gn(3, 6, no_affine);
  check_layer(gn, "gn_noaffine", {}, {});
  LayerNormOptions no_elementwise_affine;
  no_elementwise_affine.elementwise_affine = false;
  LayerNorm ln(Shape{8}, no_elementwise_affine);
  check_layer(ln, "ln_noaffine", {}, {});
}

// The fused kernels against PyTorch's separate modules (make_fixtures.py: BatchNorm + F.relu, then
// F.max_pool2d(·, 2)).
TEST_CASE("PyTorch parity: BatchNorm fused with ReLU, and with ReLU and a 2x2 max pool", "[parity][norm]") {
  BatchNormOptions relu;
  relu.fused_relu = true;
  BatchNorm1d bn1d(5, relu);
  check_layer(bn1d, "bn1d_relu", {"weight", "bias"}, {"running_mean", "running_var"});
  BatchNorm2d bn2d(3, relu);
  check_layer(bn2d, "bn2d_relu", {"weight", "bias"}, {"running_mean", "running_var"});
  BatchNormOptions relu_pool = relu;
  relu_pool.fused_max_pool = true;
  BatchNorm2d bn2d_pool(3, relu_pool);
  check_layer(bn2d_pool, "bn2d_relu_pool", {"weight", "bias"}, {"running_mean", "running_var"});
}

TEST_CASE("PyTorch parity: edge shapes (batch 2, 1x1 planes, one channel per group, one group)",
          "[parity][norm]") {
  BatchNorm1d batch2(3);  // M = 2: running_var gets twice the biased variance
  check_layer(batch2, "bn1d_batch2", {"weight", "bias"}, {"running_mean", "running_var"});
  BatchNorm2d planes_1x1(4);
  check_layer(planes_1x1, "bn2d_1x1", {"weight", "bias"}, {"running_mean", "running_var"});
  GroupNorm per_channel(4, 4);
  check_layer(per_channel, "gn_per_channel", {"weight", "bias"}, {});
  GroupNorm one_group(1, 4);
  check_layer(one_group, "gn_one_group", {"weight", "bias"}, {});
}

TEST_CASE("PyTorch parity: the backward of BatchNorm in eval mode (constant statistics), plain and fused",
          "[parity][norm]") {
  BatchNorm2d bn(3);
  check_layer(bn, "bn2d_eval_backward", {"weight", "bias"}, {"running_mean", "running_var"}, 1e-6, true);
  BatchNormOptions relu;
  relu.fused_relu = true;
  BatchNorm2d bn_relu(3, relu);
  check_layer(bn_relu, "bn2d_relu_eval_backward", {"weight", "bias"}, {"running_mean", "running_var"}, 1e-6,
              true);
}

// PyTorch has no Ghost BatchNorm: make_fixtures.py applies BatchNorm2d to each virtual batch in turn, which
// is how docs/normalization.md defines normlab's (running statistics updated once per virtual batch, in
// order).
TEST_CASE("PyTorch parity: GhostBatchNorm equals BatchNorm2d on each virtual batch in turn",
          "[parity][norm]") {
  GhostBatchNorm ghost(3, 2);
  check_layer(ghost, "ghost_bn2d", {"weight", "bias"}, {"running_mean", "running_var"});
  BatchNormOptions cma;
  cma.momentum = std::nullopt;
  GhostBatchNorm ghost_cma(3, 3, cma);
  check_layer(ghost_cma, "ghost_bn2d_cma", {"weight", "bias"}, {"running_mean", "running_var"});
}

// Batch Renormalization against make_fixtures.py's version written with PyTorch's autograd (PyTorch has no
// layer for it), with rmax 1.5 and dmax 0.5 from the first step, so that r and d are clipped.
TEST_CASE("PyTorch parity: BatchRenorm with r and d clipped, its running mean and std, and eval",
          "[parity][norm]") {
  BatchRenormOptions o;
  o.momentum = 0.1;
  o.schedule = {[](int64_t) { return 1.5; }, [](int64_t) { return 0.5; }};
  BatchRenorm renorm(3, o);
  check_layer(renorm, "batch_renorm", {"weight", "bias"}, {"running_mean", "running_std"});
}

// RMSNorm against PyTorch 2.4's definition written out in make_fixtures.py (1.13 has no nn.RMSNorm).
TEST_CASE("PyTorch parity: RMSNorm, with an explicit eps and with the dtype's machine epsilon",
          "[parity][norm]") {
  RMSNormOptions o;
  o.eps = 1e-5;
  RMSNorm rms(Shape{3, 4}, o);
  check_layer(rms, "rmsnorm", {"weight"}, {});
  RMSNorm rms_default(Shape{6});
  check_layer(rms_default, "rmsnorm_default_eps", {"weight"}, {});
}

TEST_CASE("PyTorch parity: conv2d 3x3 with padding 1 and no bias, and 1x1", "[parity][conv]") {
  for (const std::string tag : {"conv3x3", "conv1x1"}) {
    INFO(tag);
    const bool has_bias = tag == "conv1x1";
    Tensor x = fixture(tag + "_x").requires_grad_(), w = fixture(tag + "_w").requires_grad_();
    Tensor b = has_bias ? fixture(tag + "_b").requires_grad_() : Tensor();
    const Tensor y = conv2d(x, w, b, 1, has_bias ? 0 : 1);
    CHECK(allclose(y, fixture(tag + "_y"), 1e-10, 1e-10));
    y.backward(fixture(tag + "_g"));
    CHECK(allclose(x.grad(), fixture(tag + "_dx"), 1e-10, 1e-10));
    CHECK(allclose(w.grad(), fixture(tag + "_dw"), 1e-10, 1e-10));
    if (has_bias) CHECK(allclose(b.grad(), fixture(tag + "_db"), 1e-10, 1e-10));
  }
}

TEST_CASE("PyTorch parity: conv2d with stride, padding, dilation, groups and bias", "[parity][conv]") {
  Tensor x = fixture("conv_x").requires_grad_(), w = fixture("conv_w").requires_grad_();
  Tensor b = fixture("conv_b").requires_grad_();
  const Tensor y = conv2d(x, w, b, 2, 1, 2, 2);
  CHECK(allclose(y, fixture("conv_y"), 1e-10, 1e-10));
  y.backward(fixture("conv_g"));
  CHECK(allclose(x.grad(), fixture("conv_dx"), 1e-10, 1e-10));
  CHECK(allclose(w.grad(), fixture("conv_dw"), 1e-10, 1e-10));
  CHECK(allclose(b.grad(), fixture("conv_db"), 1e-10, 1e-10));
}

TEST_CASE(
    "PyTorch parity: max pooling (3x3 with padding, and 2x2), average pooling (count_include_pad=false)",
    "[parity][pooling]") {
  Tensor x = fixture("maxpool_x").requires_grad_();
  Tensor y = max_pool2d(x, 3, 2, 1);
  CHECK(allclose(y, fixture("maxpool_y"), 1e-12, 1e-12));
  y.backward(fixture("maxpool_g"));
  CHECK(allclose(x.grad(), fixture("maxpool_dx"), 1e-12, 1e-12));
  Tensor x2 = fixture("maxpool2_x").requires_grad_();  // 2x2, stride 2: the fast path
  y = max_pool2d(x2, 2);
  CHECK(allclose(y, fixture("maxpool2_y"), 1e-12, 1e-12));
  y.backward(fixture("maxpool2_g"));
  CHECK(allclose(x2.grad(), fixture("maxpool2_dx"), 1e-12, 1e-12));
  Tensor xa = fixture("avgpool_x").requires_grad_();
  y = avg_pool2d(xa, 3, 2, 1, false);
  CHECK(allclose(y, fixture("avgpool_y"), 1e-12, 1e-12));
  y.backward(fixture("avgpool_g"));
  CHECK(allclose(xa.grad(), fixture("avgpool_dx"), 1e-12, 1e-12));
}

TEST_CASE("PyTorch parity: cross-entropy with label smoothing", "[parity][loss]") {
  Tensor logits = fixture("ce_logits").requires_grad_();
  const Tensor loss = cross_entropy(logits, fixture("ce_target"), 0.1);
  CHECK(loss.item() == Approx(fixture("ce_loss").item()).epsilon(1e-12));
  loss.backward();
  CHECK(allclose(logits.grad(), fixture("ce_dlogits"), 1e-10, 1e-12));
}

TEST_CASE("PyTorch parity: SGD with momentum, nesterov, dampening and weight decay", "[parity][optim]") {
  struct Case {
    std::string tag;
    SGDOptions o;
  };
  std::vector<Case> cases(3);
  cases[0].tag = "momentum", cases[0].o.momentum = 0.9, cases[0].o.weight_decay = 0.01;
  cases[1].tag = "nesterov", cases[1].o.momentum = 0.9, cases[1].o.nesterov = true,
  cases[1].o.weight_decay = 0.01;
  cases[2].tag = "dampening", cases[2].o.momentum = 0.8, cases[2].o.dampening = 0.3;
  for (Case& c : cases) {
    INFO(c.tag);
    c.o.lr = 0.1;
    Tensor w = fixture("sgd_" + c.tag + "_w0").requires_grad_();
    SGD opt({w}, c.o);
    for (int s = 0; s < 3; ++s) {
      w.set_grad(fixture("sgd_" + c.tag + "_g" + std::to_string(s)));
      opt.step();
    }
    CHECK(allclose(w, fixture("sgd_" + c.tag + "_w3"), 1e-12, 1e-12));
  }
}
