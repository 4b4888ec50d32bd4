// normlab-predict's classifier, on the library's model builders (models/models.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <normlab/normlab.h>

namespace nl::examples {

// Classifies image files with a checkpoint written by normlab-train (what normlab-predict prints): each image
// is decoded, made gray 28×28 in [0, 1], normalized like the training data, and run through the model in
// eval mode. The normalization comes from the checkpoint ("data.mean", "data.std"), Fashion-MNIST's by
// default. A file that cannot be decoded throws nl::Error naming it.
struct Prediction {
  std::string path;
  int64_t label;
  std::string class_name;
  double probability;
};
std::vector<Prediction> classify_images(const std::string& checkpoint, const std::vector<std::string>& paths);

}  // namespace nl::examples
