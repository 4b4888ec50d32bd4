// Losses, forward and backward side by side. The formulas are in layers/loss.h and core/kernels_loss.h.
#include "layers/loss.h"

#include "autograd/engine.h"
#include "core/kernels_loss.h"
#include "core/ops.h"

namespace nl {
namespace {

// Checks (N, C) scores against (N) int64 targets in [0, C).
void check_class_targets(const Tensor& scores, const Tensor& targets, const char* op, const char* what) {
  check_defined(scores, op, what);
  check_defined(targets, op, "targets");
  check(scores.dim() == 2, op, ": ", what, " must be 2-D (N, C), got shape ", scores.shape());
  check(is_floating(scores.dtype()), op, ": ", what, " must be float32 or float64, got ",
        dtype_name(scores.dtype()));
  check(targets.dtype() == kInt64, op, ": targets must be int64 class indices, got ",
        dtype_name(targets.dtype()));
  check(targets.dim() == 1 && targets.size(0) == scores.size(0), op, ": targets must have shape [",
        scores.size(0), "] to match ", what, " of shape ", scores.shape(), ", got ", targets.shape());
  check(scores.size(1) > 0, op, ": ", what, " of shape ", scores.shape(), " has no classes");
  const int64_t classes = scores.size(1);
  const std::vector<int64_t> t = targets.to_vector<int64_t>();
  for (size_t i = 0; i < t.size(); ++i)
    check(t[i] >= 0 && t[i] < classes, op, ": target ", t[i], " at index ", i, " is out of range for ",
          classes, " classes");
}

Tensor reduce_rows_loss(const Tensor& per_row, Reduction reduction) {
  switch (reduction) {
    case Reduction::Mean:
      return mean(per_row);
    case Reduction::Sum:
      return sum(per_row);
    case Reduction::None:
      return per_row;
  }
  return per_row;
}

}  // namespace

Tensor cross_entropy(const Tensor& logits_in, const Tensor& targets_in, double label_smoothing,
                     Reduction reduction) {
  check_class_targets(logits_in, targets_in, "cross_entropy", "logits");
  check(label_smoothing >= 0.0 && label_smoothing <= 1.0,
        "cross_entropy: label_smoothing must be in [0, 1], got ", label_smoothing);
  check(logits_in.size(0) > 0 || reduction != Reduction::Mean,
        "cross_entropy: the mean over an empty batch (logits of shape ", logits_in.shape(), ") is undefined");
  Tensor logits, targets;
  {
    NoGradGuard no_record;
    logits = logits_in.contiguous();
    targets = targets_in.contiguous();
  }
  Tensor probs = empty(logits.shape(), logits.dtype(), logits.device());
  Tensor row_loss = empty({logits.size(0)}, logits.dtype(), logits.device());
  kernels::cross_entropy(logits, targets, label_smoothing, probs, row_loss);
  // The kernel's node maps d(row_loss) to d(logits); the reduction is an ordinary op after it.
  row_loss =
      record(row_loss, "cross_entropy", {logits_in}, [probs, targets, label_smoothing](const Tensor& g) {
        Tensor dz = zeros(probs.shape(), probs.dtype());
        kernels::cross_entropy_backward(probs, targets, label_smoothing, g.contiguous(), dz);
        return std::vector<Tensor>{dz};
      });
  return reduce_rows_loss(row_loss, reduction);
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, Reduction reduction) {
  check_class_targets(log_probs, targets, "nll_loss", "log_probs");
  check(log_probs.size(0) > 0 || reduction != Reduction::Mean,
        "nll_loss: the mean over an empty batch (log_probs of shape ", log_probs.shape(), ") is undefined");
  // −log_probs[i, t_i], picked by a one-hot mask so autograd routes the gradient to the target entries.
  const Tensor classes = arange(0.0, static_cast<double>(log_probs.size(1)), 1.0, kInt64).reshape({1, -1});
  const Tensor one_hot = eq(classes, targets.reshape({-1, 1})).to(log_probs.dtype());
  return reduce_rows_loss(neg(sum(mul(log_probs, one_hot), {1})), reduction);
}

Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction reduction) {
  check_defined(pred, "mse_loss", "pred");
  check_defined(target, "mse_loss", "target");
  check(pred.shape() == target.shape(), "mse_loss: pred has shape ", pred.shape(), " but target has shape ",
        target.shape());
  check(is_floating(pred.dtype()) && pred.dtype() == target.dtype(), "mse_loss: pred (",
        dtype_name(pred.dtype()), ") and target (", dtype_name(target.dtype()),
        ") must be the same float dtype");
  const Tensor se = square(sub(pred, target));
  switch (reduction) {
    case Reduction::Mean:
      check(pred.numel() > 0, "mse_loss: the mean over an empty tensor of shape ", pred.shape(),
            " is undefined");
      return mean(se);
    case Reduction::Sum:
      return sum(se);
    case Reduction::None:
      return se;
  }
  return se;
}

double accuracy(const Tensor& logits, const Tensor& targets) {
  check_class_targets(logits, targets, "accuracy", "logits");
  check(logits.size(0) > 0, "accuracy: empty batch (logits of shape ", logits.shape(), ")");
  NoGradGuard no_record;
  const std::vector<int64_t> predicted = argmax(logits, 1).to_vector<int64_t>(),
                             t = targets.to_vector<int64_t>();
  int64_t correct = 0;
  for (size_t i = 0; i < t.size(); ++i) correct += predicted[i] == t[i];
  return static_cast<double>(correct) / static_cast<double>(t.size());
}

}  // namespace nl
