#include "layers/residual.h"

#include "core/ops.h"
#include "layers/activation.h"
#include "layers/linear.h"
#include "layers/pooling.h"

namespace nl {
namespace {

ModulePtr make_norm(const NormFactory& norm, int64_t channels) {
  if (!norm) return std::make_shared<Identity>();
  ModulePtr m = norm(channels);
  check(m != nullptr, "BasicBlock: the normalization factory returned null for ", channels, " channels");
  return m;
}

// A conv (with the block's geometry) followed by its normalization; the bias is dropped when the norm
// cancels it.
void add_conv_norm(Sequential& seq, int64_t in, int64_t out, int64_t kernel, int64_t stride,
                   const NormFactory& norm, Conv2dOptions opt) {
  ModulePtr n = make_norm(norm, out);
  opt.stride = stride;
  opt.padding = kernel / 2;
  opt.dilation = 1;
  opt.groups = 1;
  opt.bias = opt.bias && !n->cancels_preceding_bias();
  seq.add(std::make_shared<Conv2d>(in, out, kernel, opt));
  seq.add(n);
}

}  // namespace

BasicBlock::BasicBlock(int64_t in, int64_t out, int64_t s, NormFactory norm, Conv2dOptions opt)
    : in_channels(in), out_channels(out), stride(s) {
  check(in > 0 && out > 0 && s >= 1, "BasicBlock: need positive channels and stride >= 1, got in ", in,
        ", out ", out, ", stride ", s);
  body = std::make_shared<Sequential>();
  add_conv_norm(*body, in, out, 3, s, norm, opt);
  body->add(std::make_shared<ReLU>());
  add_conv_norm(*body, out, out, 3, 1, norm, opt);
  register_module("body", body);
  if (s != 1 || in != out) {
    auto projection = std::make_shared<Sequential>();
    add_conv_norm(*projection, in, out, 1, s, norm, opt);
    shortcut = projection;
  } else {
    shortcut = std::make_shared<Identity>();
  }
  register_module("shortcut", shortcut);
}

Tensor BasicBlock::forward(const Tensor& x) {
  check(x.dim() == 4 && x.size(1) == in_channels, describe(), ": expected input of shape [N, ", in_channels,
        ", H, W], got ", x.shape());
  return relu(add((*body)(x), (*shortcut)(x)));
}

std::shared_ptr<Module> BasicBlock::clone_impl() const {
  auto copy = copy_of(*this);
  // The typed handles still point at this block's children: point them at the copy's.
  copy->body = std::dynamic_pointer_cast<Sequential>(copy->child("body"));
  copy->shortcut = copy->child("shortcut");
  return copy;
}

std::string BasicBlock::describe() const {
  return cat_str("BasicBlock(", in_channels, ", ", out_channels, ", stride=", stride, ")");
}

std::shared_ptr<Sequential> small_resnet(const SmallResNetOptions& o) {
  check(!o.widths.empty() && o.blocks_per_stage >= 1 && o.num_classes >= 1 && o.in_channels >= 1,
        "small_resnet: need at least one stage width, blocks_per_stage >= 1, num_classes >= 1 and ",
        "in_channels >= 1");
  auto net = std::make_shared<Sequential>();
  add_conv_norm(*net, o.in_channels, o.widths[0], 3, 1, o.norm, o.conv_options);
  net->add(std::make_shared<ReLU>());
  int64_t channels = o.widths[0];
  for (size_t stage = 0; stage < o.widths.size(); ++stage)
    for (int64_t b = 0; b < o.blocks_per_stage; ++b) {
      const int64_t s = (stage > 0 && b == 0) ? 2 : 1;
      net->add(std::make_shared<BasicBlock>(channels, o.widths[stage], s, o.norm, o.conv_options));
      channels = o.widths[stage];
    }
  net->add(std::make_shared<GlobalAvgPool2d>());
  net->add(std::make_shared<Linear>(
      channels, o.num_classes,
      LinearOptions{.bias = true, .dtype = o.conv_options.dtype, .generator = o.conv_options.generator}));
  return net;
}

}  // namespace nl
