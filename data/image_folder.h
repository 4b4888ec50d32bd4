// ImageFolder: a classification data set stored as one sub-folder of image files per class.
//
//   root/
//     cat/  001.png  002.jpg ...
//     dog/  a.bmp ...
//
// Classes are the sub-folders of root sorted by name (byte order); class i gets label i. The samples of a
// class are the files directly inside its folder whose extension is .png, .jpg, .jpeg or .bmp (any case),
// sorted by name; other files, hidden files (".x") and deeper folders are ignored. A class folder with no
// image is an error.
//
// Images are decoded with stb_image on every get() (nothing is cached) and come out as float32
// (channels, height, width) with each byte b mapped to b / 255, so values lie in [0, 1]:
//   channels 1: gray; a color image becomes stb_image's luma (77 R + 150 G + 29 B) / 256
//   channels 3: RGB; a gray image is repeated in all three; alpha is dropped
// then resized bilinearly to (height, width) if its size differs (resize_bilinear below).
// A file that cannot be read or decoded is an nl::Error naming the file and stb_image's reason.
#pragma once

#include <string>
#include <vector>

#include "dataset.h"

namespace nl {

// Bilinear resize of a float (C, H, W) image to (C, height, width), with PyTorch's align_corners=False
// convention (pixel centers at half-integers, no antialiasing). For output row y:
//   src_y = max((y + 0.5) · H / height − 0.5, 0),  y0 = floor(src_y),  y1 = min(y0 + 1, H − 1),
//   wy = src_y − y0; likewise for columns; the value is the wy/wx-weighted mix of the four neighbours.
// Equal sizes reproduce the input exactly.
Tensor resize_bilinear(const Tensor& image, int64_t height, int64_t width);

// Decodes a PNG, JPEG or BMP file into float32 (channels, height, width) in [0, 1] as described above.
// channels is 1 or 3; height and width >= 1.
Tensor load_image(const std::string& path, int64_t channels, int64_t height, int64_t width);

class ImageFolder : public Dataset {
 public:
  ImageFolder(const std::string& root, int64_t channels, int64_t height, int64_t width);

  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  Example get(int64_t index) const override;

  const std::vector<std::string>& classes() const { return classes_; }
  const std::string& path(int64_t index) const;  // the file behind sample `index`
  int64_t label(int64_t index) const;            // its class, without decoding the image

 private:
  struct Sample {
    std::string path;
    int64_t label;
  };
  std::vector<std::string> classes_;
  std::vector<Sample> samples_;
  int64_t channels_, height_, width_;
};

}  // namespace nl
