#include "models.h"

#include <algorithm>

namespace nl::examples {

std::vector<Prediction> classify_images(const std::string& checkpoint,
                                        const std::vector<std::string>& paths) {
  const Metadata metadata = read_checkpoint_metadata(checkpoint);
  const ModelConfig config = from_metadata(metadata);
  // The input normalization the model was trained with (Fashion-MNIST's, unless the checkpoint says
  // otherwise).
  double mean = kFashionMnistMean, stddev = kFashionMnistStd;
  if (metadata.count("data.mean") && metadata.count("data.std")) {
    mean = std::stod(metadata.at("data.mean"));
    stddev = std::stod(metadata.at("data.std"));
  }
  std::shared_ptr<Sequential> model = build_model(config);
  load_model(checkpoint, *model);
  model->eval();
  NoGradGuard no_record;
  std::vector<Prediction> out;
  for (const std::string& path : paths) {
    const Tensor x = div(sub(load_image(path, 1, 28, 28), mean), stddev).unsqueeze(0);
    const std::vector<double> p = softmax(model->forward(x), 1).to_vector<double>();
    const int64_t k = std::max_element(p.begin(), p.end()) - p.begin();
    out.push_back({path, k, fashion_mnist_classes()[k], p[k]});
  }
  return out;
}

}  // namespace nl::examples
