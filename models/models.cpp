#include "models/models.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "layers/activation.h"
#include "layers/conv.h"
#include "layers/linear.h"
#include "layers/normalization.h"
#include "layers/pooling.h"
#include "layers/residual.h"

namespace nl {
namespace {

// Feature layout a normalization layer sees: (N, C) after a Linear, (N, C, H, W) after a conv.
struct Features {
  int64_t channels;
  int64_t height = 0, width = 0;  // 0 for (N, C)
  bool spatial() const { return height > 0; }
};

// The BatchNorm knobs of the config, for BatchNorm1d/2d, GhostBatchNorm and NoisyBatchNorm.
BatchNormOptions batch_norm_options(const ModelConfig& c) {
  BatchNormOptions o;
  o.eps = c.bn_eps;
  o.momentum = c.bn_momentum;
  o.affine = c.bn_affine;
  return o;
}

// pool_after: a 2×2 max pool follows the norm's ReLU (a fused BatchNorm then takes it in too).
ModulePtr make_norm(const ModelConfig& c, const Features& f, bool pool_after = false) {
  const int64_t C = f.channels;
  if (c.norm == "none") return nullptr;
  if (c.norm == "batch") {
    BatchNormOptions o = batch_norm_options(c);
    o.fused_relu = c.fused_bn_relu;  // add_block then adds no ReLU of its own
    o.fused_max_pool = c.fused_bn_relu && pool_after && f.spatial();  // ... nor a MaxPool2d
    return f.spatial() ? ModulePtr(std::make_shared<BatchNorm2d>(C, o)) : std::make_shared<BatchNorm1d>(C, o);
  }
  if (c.norm == "ghost")
    return std::make_shared<GhostBatchNorm>(C, c.ghost_batch_size, batch_norm_options(c));
  if (c.norm == "noisy") return std::make_shared<NoisyBatchNorm>(C, NoiseOptions{}, batch_norm_options(c));
  if (c.norm == "batchrenorm") {
    BatchRenormOptions o;
    o.eps = c.bn_eps;
    o.affine = c.bn_affine;
    if (c.renorm_total_steps > 0) {
      // The paper's shape (warm-up, then rmax → 3 and dmax → 5) compressed to this run: 5%, 40%, 25%.
      const int64_t T = c.renorm_total_steps;
      o.schedule = batch_renorm_paper_schedule(T / 20, 2 * T / 5, T / 4);
    }
    return std::make_shared<BatchRenorm>(C, o);
  }
  if (c.norm == "instance") {
    if (!f.spatial()) return nullptr;  // one value per (sample, channel): nothing to normalize over
    InstanceNormOptions o;
    o.affine = true;  // the trainer compares normalizations with a learnable scale and shift
    return std::make_shared<InstanceNorm2d>(C, o);
  }
  if (c.norm == "group") return std::make_shared<GroupNorm>(std::min(c.groups, C), C);
  if (c.norm == "layer") {
    if (f.spatial()) return std::make_shared<LayerNorm>(Shape{C, f.height, f.width});
    return std::make_shared<LayerNorm>(Shape{C});
  }
  if (c.norm == "rms") {
    if (f.spatial()) return std::make_shared<RMSNorm>(Shape{C, f.height, f.width});
    return std::make_shared<RMSNorm>(Shape{C});
  }
  throw Error(cat_str("--norm: unknown normalization '", c.norm, "'"));
}

// Whether the layer before `norm` gets a bias (norm may be null: no normalization there).
bool bias_before(const ModelConfig& c, const ModulePtr& norm) {
  if (c.bias == "on") return true;
  if (c.bias == "off") return false;
  return norm == nullptr;  // auto
}

// Appends layer(bias) → norm → ReLU, where the normalization sees features f (layer(bias) → BatchNorm with
// its fused ReLU, when the config asks for it). With pool_after, a 2×2 max pool follows: fused into the
// BatchNorm as well when the ReLU is, with an Identity left in its place so that the modules after it keep
// their names (and checkpoints their keys).
template <class MakeLayer>
void add_block(Sequential& net, const ModelConfig& c, const Features& f, MakeLayer make_layer,
               bool pool_after = false) {
  ModulePtr norm = make_norm(c, f, pool_after);
  auto* bn = dynamic_cast<BatchNorm*>(norm.get());
  net.add(make_layer(bias_before(c, norm)));
  if (norm) net.add(norm);
  if (!(bn && bn->options().fused_relu)) net.add(std::make_shared<ReLU>());
  if (pool_after)
    net.add(bn && bn->options().fused_max_pool ? ModulePtr(std::make_shared<Identity>())
                                               : std::make_shared<MaxPool2d>(2));
}

std::shared_ptr<Sequential> build_mlp(const ModelConfig& c) {
  auto net = std::make_shared<Sequential>();
  net->add(std::make_shared<Flatten>());
  int64_t in = 784;
  for (int64_t width : c.mlp_hidden) {
    add_block(*net, c, {width}, [&](bool bias) { return std::make_shared<Linear>(in, width, bias); });
    in = width;
  }
  net->add(std::make_shared<Linear>(in, 10));
  return net;
}

std::shared_ptr<Sequential> build_cnn(const ModelConfig& c) {
  auto net = std::make_shared<Sequential>();
  auto conv3x3 = [](int64_t in, int64_t out) {
    return [in, out](bool bias) {
      Conv2dOptions conv;
      conv.padding = 1;
      conv.bias = bias;
      return std::make_shared<Conv2d>(in, out, 3, conv);
    };
  };
  add_block(*net, c, {32, 28, 28}, conv3x3(1, 32), true);
  add_block(*net, c, {64, 14, 14}, conv3x3(32, 64), true);
  net->add(std::make_shared<Flatten>());
  add_block(*net, c, {128}, [](bool bias) { return std::make_shared<Linear>(64 * 7 * 7, 128, bias); });
  net->add(std::make_shared<Linear>(128, 10));
  return net;
}

std::shared_ptr<Sequential> build_resnet(const ModelConfig& c) {
  SmallResNetOptions o;
  o.in_channels = 1;
  o.num_classes = 10;
  o.conv_options.bias = c.bias == "on" || (c.bias == "auto" && c.norm == "none");
  if (c.norm != "none") {
    ModelConfig per_stage = c;
    if (c.norm == "layer" || c.norm == "rms")
      throw Error(
          "--norm layer/rms: not available for --model resnet (feature sizes change per stage); use "
          "--norm group --groups 1, which is LayerNorm over (C, H, W) with a per-channel affine");
    o.norm = [per_stage](int64_t channels) { return make_norm(per_stage, {channels, 1, 1}); };
  }
  return small_resnet(o);
}

// The shortest text that reads back to exactly v (std::to_chars without a precision).
std::string shortest(double v) {
  char text[32];
  const auto [end, error] = std::to_chars(text, text + sizeof text, v);
  check(error == std::errc(), "to_metadata: cannot format ", v);
  return std::string(text, end);
}

std::string momentum_text(const std::optional<double>& momentum) {
  return momentum ? shortest(*momentum) : std::string("cumulative");
}

}  // namespace

void validate(const ModelConfig& c) {
  static const std::set<std::string> models{"mlp", "cnn", "resnet"};
  static const std::set<std::string> norms{"none", "batch",       "layer", "group", "instance",
                                           "rms",  "batchrenorm", "ghost", "noisy"};
  static const std::set<std::string> biases{"auto", "on", "off"};
  check(models.count(c.model), "--model: unknown model '", c.model, "' (expected mlp, cnn or resnet)");
  check(norms.count(c.norm), "--norm: unknown normalization '", c.norm,
        "' (expected none, batch, layer, group, instance, rms, batchrenorm, ghost or noisy)");
  check(biases.count(c.bias), "--bias: expected auto, on or off, got '", c.bias, "'");
  check(!(c.model == "mlp" && c.norm == "instance"),
        "--norm instance: InstanceNorm needs spatial dims; use it with --model cnn or resnet");
  check(c.groups >= 1, "--groups: expected >= 1, got ", c.groups);
  check(c.ghost_batch_size >= 1, "--ghost-batch-size: expected >= 1, got ", c.ghost_batch_size);
  // NaN fails these comparisons too.
  check(std::isfinite(c.bn_eps) && c.bn_eps >= 0, "--bn-eps: expected a finite number >= 0, got ", c.bn_eps);
  check(!c.bn_momentum || (*c.bn_momentum >= 0 && *c.bn_momentum <= 1),
        "--bn-momentum: expected a number in [0, 1] or 'cumulative', got ", momentum_text(c.bn_momentum));
}

std::shared_ptr<Sequential> build_model(const ModelConfig& c) {
  validate(c);
  if (c.model == "mlp") return build_mlp(c);
  if (c.model == "cnn") return build_cnn(c);
  return build_resnet(c);
}

std::map<std::string, std::string> to_metadata(const ModelConfig& c) {
  std::string hidden;
  for (int64_t h : c.mlp_hidden) {
    if (!hidden.empty()) hidden += ',';
    hidden += std::to_string(h);
  }
  return {{"model.model", c.model},
          {"model.norm", c.norm},
          {"model.bias", c.bias},
          {"model.mlp_hidden", hidden},
          {"model.groups", std::to_string(c.groups)},
          {"model.ghost_batch_size", std::to_string(c.ghost_batch_size)},
          {"model.renorm_total_steps", std::to_string(c.renorm_total_steps)},
          {"model.fused_bn_relu", c.fused_bn_relu ? "1" : "0"},
          {"model.bn_eps", shortest(c.bn_eps)},
          {"model.bn_momentum", momentum_text(c.bn_momentum)},
          {"model.bn_affine", c.bn_affine ? "1" : "0"}};
}

ModelConfig from_metadata(const std::map<std::string, std::string>& m) {
  auto get = [&m](const std::string& key) {
    auto it = m.find(key);
    check(it != m.end(), "checkpoint: metadata has no '", key, "' (not written by normlab-train?)");
    return it->second;
  };
  auto get_int = [&](const std::string& key) {
    const std::string v = get(key);
    try {
      return static_cast<int64_t>(std::stoll(v));
    } catch (const std::exception&) {
      throw Error(cat_str("checkpoint: metadata '", key, "' is not an integer: '", v, "'"));
    }
  };
  // The whole text must be the number (std::stod would accept "0.1abc").
  auto get_double = [&](const std::string& key) {
    const std::string v = get(key);
    double value = 0;
    const auto [end, error] = std::from_chars(v.data(), v.data() + v.size(), value);
    check(error == std::errc() && end == v.data() + v.size() && !v.empty(), "checkpoint: metadata '", key,
          "' is not a number: '", v, "'");
    return value;
  };
  ModelConfig c;
  c.model = get("model.model");
  c.norm = get("model.norm");
  c.bias = get("model.bias");
  c.mlp_hidden.clear();
  const std::string hidden = get("model.mlp_hidden");
  size_t start = 0;
  while (start < hidden.size()) {
    const size_t comma = std::min(hidden.find(',', start), hidden.size());
    try {
      c.mlp_hidden.push_back(std::stoll(hidden.substr(start, comma - start)));
    } catch (const std::exception&) {
      throw Error(cat_str("checkpoint: metadata 'model.mlp_hidden' is malformed: '", hidden, "'"));
    }
    start = comma + 1;
  }
  c.groups = get_int("model.groups");
  c.ghost_batch_size = get_int("model.ghost_batch_size");
  c.renorm_total_steps = get_int("model.renorm_total_steps");
  // Checkpoints written before the fused BatchNorm + ReLU existed have no key: their models had a ReLU
  // module of their own (which shifts the names of the layers after it).
  c.fused_bn_relu = m.count("model.fused_bn_relu") && get_int("model.fused_bn_relu") != 0;
  // Checkpoints written before the BatchNorm settings existed have none of these keys: their layers had the
  // defaults.
  if (m.count("model.bn_eps")) c.bn_eps = get_double("model.bn_eps");
  if (m.count("model.bn_momentum"))
    c.bn_momentum = get("model.bn_momentum") == "cumulative" ? std::nullopt
                                                             : std::optional(get_double("model.bn_momentum"));
  if (m.count("model.bn_affine")) c.bn_affine = get_int("model.bn_affine") != 0;
  validate(c);
  return c;
}

std::string describe(const ModelConfig& c) {
  const bool fused = c.norm == "batch" && c.fused_bn_relu;
  const char* what = c.model == "cnn" ? " (fused with its ReLU and max pool)" : " (fused with its ReLU)";
  std::string bn;  // the BatchNorm settings that differ from the defaults
  if (c.norm == "batch" || c.norm == "ghost" || c.norm == "noisy" || c.norm == "batchrenorm") {
    const ModelConfig defaults;
    if (c.bn_eps != defaults.bn_eps) bn += " eps=" + shortest(c.bn_eps);
    if (c.bn_momentum != defaults.bn_momentum) bn += " momentum=" + momentum_text(c.bn_momentum);
    if (!c.bn_affine) bn += " affine=off";
  }
  return c.model + ", norm=" + c.norm + (fused ? what : "") + ", bias=" + c.bias +
         (bn.empty() ? "" : ", bn" + bn);
}

}  // namespace nl
