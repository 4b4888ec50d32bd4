// The fused SGD kernel against the update written step by step with tensor ops (the readable reference).
#include <catch2/catch.hpp>

#include "core/kernels_optim.h"
#include "core/ops.h"
#include "core/random.h"
#include "test_util.h"

using namespace nl;

namespace {

// PyTorch's SGD, one op per line of its documentation.
void reference_update(const kernels::SgdStep& s, Tensor& w, const Tensor& g, Tensor& buf) {
  Tensor d = add(g, mul(w, s.weight_decay));
  if (s.momentum != 0) {
    buf = s.first_step ? d.clone() : add(mul(buf, s.momentum), mul(d, 1 - s.dampening));
    d = s.nesterov ? add(d, mul(buf, s.momentum)) : buf;
  }
  w = sub(mul(w, 1 - s.lr * s.decoupled_decay), mul(d, s.lr));
}

}  // namespace

TEST_CASE("the fused SGD kernel matches the step-by-step update for every option", "[optim][sgd]") {
  Generator gen(31);
  for (bool nesterov : {false, true})
    for (double momentum : {0.0, 0.9})
      for (double dampening : {0.0, 0.3})
        for (bool decoupled : {false, true}) {
          if (nesterov && momentum == 0) continue;
          INFO("nesterov " << nesterov << ", momentum " << momentum << ", dampening " << dampening
                           << ", decoupled " << decoupled);
          kernels::SgdStep s;
          s.lr = 0.1;
          s.momentum = momentum;
          s.dampening = dampening;
          s.nesterov = nesterov;
          s.weight_decay = decoupled ? 0.0 : 0.01;
          s.decoupled_decay = decoupled ? 0.01 : 0.0;
          Tensor w = randn({1000}, kFloat64, &gen), w_ref = w.clone();
          Tensor buf = empty({1000}, kFloat64), buf_ref;
          for (int step = 0; step < 3; ++step) {
            s.first_step = step == 0;
            const Tensor g = randn({1000}, kFloat64, &gen);
            kernels::sgd_update(s, w, g, buf);
            reference_update(s, w_ref, g, buf_ref);
          }
          CHECK(test::allclose(w, w_ref, 1e-13, 1e-13));
          if (momentum != 0) CHECK(test::allclose(buf, buf_ref, 1e-13, 1e-13));
        }
}
