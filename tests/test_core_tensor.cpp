// Tensor creation, metadata, views and copies.
#include <catch2/catch.hpp>

#include "core/ops.h"
#include "core/random.h"
#include "core/tensor.h"
#include "test_util.h"

using namespace nl;
using test::values;

TEST_CASE("creation functions fill the expected values", "[tensor]") {
  CHECK(values(zeros({2, 2})) == std::vector<double>{0, 0, 0, 0});
  CHECK(values(ones({3}, kFloat64)) == std::vector<double>{1, 1, 1});
  CHECK(values(full({2}, 2.5)) == std::vector<double>{2.5, 2.5});
  CHECK(values(arange(0.0, 1.0, 0.25)) == std::vector<double>{0, 0.25, 0.5, 0.75});
  CHECK(arange(5).dtype() == kInt64);
  CHECK(values(arange(5)) == std::vector<double>{0, 1, 2, 3, 4});
  CHECK(values(linspace(0, 1, 5)) == std::vector<double>{0, 0.25, 0.5, 0.75, 1});
  CHECK(values(eye(2)) == std::vector<double>{1, 0, 0, 1});
  const Tensor t = tensor({{1, 2, 3}, {4, 5, 6}});
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t.dtype() == kFloat32);
  CHECK(from_vector(std::vector<int64_t>{1, 2, 3, 4}, {2, 2}).dtype() == kInt64);
  CHECK(scalar_tensor(3.0).dim() == 0);
  CHECK(scalar_tensor(3.0).item() == 3.0);
}

TEST_CASE("from_vector rejects a shape that the values do not fill", "[tensor][errors]") {
  REQUIRE_THROWS_WITH(from_vector(std::vector<float>{1, 2, 3}, {2, 2}),
                      "from_vector: 3 values do not fill shape [2, 2] (4 elements)");
  REQUIRE_THROWS_WITH(tensor({{1, 2}, {3}}), Catch::Contains("ragged rows"));
}

TEST_CASE("reshape and view share storage when the layout allows", "[tensor][views]") {
  Tensor t = arange(0.0, 6.0, 1.0);
  Tensor v = t.view({2, 3});
  CHECK(v.impl()->storage == t.impl()->storage);
  v.fill_(7);
  CHECK(values(t) == std::vector<double>(6, 7.0));
  CHECK(t.reshape({3, -1}).shape() == Shape{3, 2});
  REQUIRE_THROWS_WITH(t.view({4, 2}), "view: cannot reshape [6] (6 elements) into [4, 2] (8 elements)");
  REQUIRE_THROWS_WITH(t.reshape({-1, -1}), Catch::Contains("only one dimension may be -1"));
}

TEST_CASE("reshape names itself in its errors, whether or not it copies", "[tensor][views][errors]") {
  const Tensor t = arange(0.0, 6.0, 1.0);
  REQUIRE_THROWS_WITH(t.reshape({4, 2}), "reshape: cannot reshape [6] (6 elements) into [4, 2] (8 elements)");
  REQUIRE_THROWS_WITH(t.reshape({-1, 4}), "reshape: cannot reshape [6] (6 elements) into [-1, 4]");
  REQUIRE_THROWS_WITH(t.reshape({2, -2}), "reshape: invalid dimension -2 in [2, -2]");
  const Tensor strided = t.reshape({2, 3}).t();  // reshape copies it first
  REQUIRE_THROWS_WITH(strided.reshape({5}),
                      "reshape: cannot reshape [3, 2] (6 elements) into [5] (5 elements)");
  REQUIRE_THROWS_WITH(t.flatten().reshape({7}), Catch::StartsWith("reshape: "));
  REQUIRE_THROWS_WITH(t.view({-1, -1}), Catch::StartsWith("view: only one dimension may be -1"));
}

TEST_CASE("shape arithmetic that leaves 64 bits is an error naming the op and the shape",
          "[tensor][errors]") {
  const int64_t big = int64_t{1} << 32;
  // 2^32 · 2^32 elements wrapped to 0: empty() made a tensor of no elements.
  CHECK_THROWS_WITH(empty({big, big}),
                    Catch::StartsWith("empty: shape [4294967296, 4294967296] is too large"));
  // A size-0 dimension does not excuse the others: the strides of [0, 2^32, 2^32] would overflow.
  CHECK_THROWS_WITH(zeros({0, big, big}), Catch::Contains("shape [0, 4294967296, 4294967296] is too large"));
  // 2^62 float32 elements fit in int64_t, their 2^64 bytes do not.
  CHECK_THROWS_WITH(empty({int64_t{1} << 62}),
                    Catch::StartsWith("empty: shape [4611686018427387904] is too large"));
  CHECK_THROWS_WITH(empty({int64_t{1} << 62}, kInt64), Catch::Contains("[4611686018427387904]"));
  CHECK_THROWS_WITH(numel_of({big, big, 2}),
                    Catch::Contains("shape [4294967296, 4294967296, 2] is too large"));
  CHECK_THROWS_WITH(contiguous_strides({big, 2, big}), Catch::Contains("[4294967296, 2, 4294967296]"));
  CHECK(contiguous_strides({0, 3, 4}) == Shape{12, 4, 1});
  // Views with a new shape: reshape of an empty tensor, expand of a broadcast, and a broadcasting op.
  CHECK_THROWS_WITH(zeros({0}).reshape({0, big, big}),
                    Catch::StartsWith("reshape: shape [0, 4294967296, 4294967296] is too large"));
  CHECK_THROWS_WITH(zeros({0}).reshape({big, big, -1}), Catch::StartsWith("reshape: "));
  CHECK_THROWS_WITH(ones({1, 1}).expand({big, big}),
                    Catch::StartsWith("expand: shape [4294967296, 4294967296] is too large"));
  const Tensor column = ones({1, 1}).expand({big, 1}), row = ones({1, 1}).expand({1, big});
  CHECK_THROWS_WITH(add(column, row), Catch::StartsWith("add: shape [4294967296, 4294967296] is too large"));
  CHECK_THROWS_WITH(cat({ones({1}).expand({int64_t{1} << 62}), ones({1}).expand({int64_t{1} << 62})}, 0),
                    Catch::StartsWith("cat: "));
  // A step beyond the dimension takes the first element (the size computation overflowed).
  const Tensor s = arange(0.0, 10.0, 1.0).slice(0, 3, 10, INT64_MAX);
  CHECK(s.shape() == Shape{1});
  CHECK(values(s) == std::vector<double>{3});
  CHECK(arange(0.0, 10.0, 1.0).slice(0, 3, 3, INT64_MAX).shape() == Shape{0});
}

TEST_CASE("permute and transpose are views; contiguous copies in logical order", "[tensor][views]") {
  const Tensor t = arange(0.0, 6.0, 1.0).reshape({2, 3});
  const Tensor tt = t.t();
  CHECK(tt.shape() == Shape{3, 2});
  CHECK_FALSE(tt.is_contiguous());
  CHECK(tt.impl()->storage == t.impl()->storage);
  CHECK(values(tt) == std::vector<double>{0, 3, 1, 4, 2, 5});
  const Tensor c = tt.contiguous();
  CHECK(c.is_contiguous());
  CHECK(c.impl()->storage != t.impl()->storage);
  CHECK(values(c) == std::vector<double>{0, 3, 1, 4, 2, 5});
  // A non-contiguous tensor cannot be viewed, but can be reshaped (a copy).
  REQUIRE_THROWS_WITH(tt.view({6}), Catch::Contains("not contiguous"));
  CHECK(values(tt.reshape({6})) == std::vector<double>{0, 3, 1, 4, 2, 5});
  const Tensor p = arange(0.0, 24.0, 1.0).reshape({2, 3, 4}).permute({2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.contiguous().to_vector<double>()[1] == 4.0);  // p[0][0][1] = x[0][1][0]
  REQUIRE_THROWS_WITH(t.permute({0, 0}), Catch::Contains("appears twice"));
}

TEST_CASE("narrow, slice and select pick sub-ranges as views", "[tensor][views]") {
  const Tensor t = arange(0.0, 12.0, 1.0).reshape({3, 4});
  CHECK(values(t.narrow(1, 1, 2)) == std::vector<double>{1, 2, 5, 6, 9, 10});
  CHECK(values(t.slice(1, 0, 4, 2)) == std::vector<double>{0, 2, 4, 6, 8, 10});
  CHECK(values(t.slice(0, -1, 3)) == std::vector<double>{8, 9, 10, 11});
  CHECK(values(t.select(0, 1)) == std::vector<double>{4, 5, 6, 7});
  CHECK(t.select(1, -1).shape() == Shape{3});
  REQUIRE_THROWS_WITH(t.narrow(1, 3, 2), "narrow: range [3, 5) is outside dim 1 of size 4 (shape [3, 4])");
  REQUIRE_THROWS_WITH(t.select(2, 0), Catch::Contains("dim 2 is out of range for a tensor of rank 2"));
}

TEST_CASE("in-place updates write through views", "[tensor][views]") {
  Tensor t = zeros({2, 3});
  t.narrow(1, 1, 1).fill_(5);
  CHECK(values(t) == std::vector<double>{0, 5, 0, 0, 5, 0});
  t.t().narrow(0, 2, 1).copy_(tensor({1, 2}));
  CHECK(values(t) == std::vector<double>{0, 5, 1, 0, 5, 2});
  Tensor u = ones({3});
  u.add_(tensor({1, 2, 3}), 2.0).mul_(0.5);
  CHECK(values(u) == std::vector<double>{1.5, 2.5, 3.5});
  REQUIRE_THROWS_WITH(u.add_(ones({2})), "add_: shape [2] does not match [3]");
}

TEST_CASE("unsqueeze, squeeze, flatten and expand", "[tensor][views]") {
  const Tensor t = arange(0.0, 6.0, 1.0).reshape({2, 3});
  CHECK(t.unsqueeze(0).shape() == Shape{1, 2, 3});
  CHECK(t.unsqueeze(-1).shape() == Shape{2, 3, 1});
  CHECK(t.unsqueeze(1).squeeze(1).shape() == Shape{2, 3});
  CHECK(t.flatten().shape() == Shape{6});
  CHECK(zeros({2, 3, 4, 5}).flatten(1).shape() == Shape{2, 60});
  const Tensor e = tensor({1, 2, 3}).expand({2, 3});
  CHECK(e.strides()[0] == 0);
  CHECK(values(e) == std::vector<double>{1, 2, 3, 1, 2, 3});
  REQUIRE_THROWS_WITH(tensor({1, 2, 3}).expand({2, 4}), Catch::Contains("cannot expand shape [3] to [2, 4]"));
}

TEST_CASE("to() converts dtypes; item reads one element", "[tensor]") {
  const Tensor t = tensor({1.7, -2.2});
  CHECK(values(t.to(kInt64)) == std::vector<double>{1, -2});
  CHECK(t.to(kFloat64).dtype() == kFloat64);
  CHECK(tensor({4.5}).item() == 4.5);
  REQUIRE_THROWS_WITH(t.item(), "item: expected a tensor with one element, got shape [2]");
  REQUIRE_THROWS_WITH(t.data<double>(), "data<float64>: tensor has dtype float32");
  REQUIRE_THROWS_WITH(Tensor().shape(), Catch::Contains("undefined tensor"));
}

TEST_CASE("cat, stack and index_select", "[tensor][ops]") {
  const Tensor a = tensor({{1, 2}, {3, 4}}), b = tensor({{5, 6}});
  CHECK(values(cat({a, b}, 0)) == std::vector<double>{1, 2, 3, 4, 5, 6});
  CHECK(values(cat({a, a}, 1)) == std::vector<double>{1, 2, 1, 2, 3, 4, 3, 4});
  CHECK(stack({a, a}, 0).shape() == Shape{2, 2, 2});
  CHECK(values(stack({tensor({1, 2}), tensor({3, 4})}, 1)) == std::vector<double>{1, 3, 2, 4});
  const Tensor idx = from_vector(std::vector<int64_t>{1, 1, 0});
  CHECK(values(index_select(a, 0, idx)) == std::vector<double>{3, 4, 3, 4, 1, 2});
  CHECK(values(index_select(a, 1, idx)) == std::vector<double>{2, 2, 1, 4, 4, 3});
  REQUIRE_THROWS_WITH(cat({a, b}, 1),
                      Catch::Contains("cat: tensor 1 has shape [1, 2] but tensor 0 has shape [2, 2]"));
  REQUIRE_THROWS_WITH(index_select(a, 0, from_vector(std::vector<int64_t>{2})),
                      "index_select: index 2 is out of range for dim 0 of size 2 (shape [2, 2])");
  REQUIRE_THROWS_WITH(index_select(a, 0, tensor({0})), Catch::Contains("index must be int64"));
}

TEST_CASE("printing shows dtype, shape and values, abbreviated when large", "[tensor]") {
  const std::string small = to_string(tensor({{1, 2}, {3, 4}}));
  CHECK(small == "tensor(float32, [2, 2])\n[[1, 2],\n [3, 4]]");
  const std::string large = to_string(arange(0.0, 2000.0, 1.0));
  CHECK(large.find("...") != std::string::npos);
  CHECK(large.find("1999") != std::string::npos);
  CHECK(large.size() < 200);
}

TEST_CASE("empty tensors are legal", "[tensor]") {
  const Tensor e = zeros({0, 3});
  CHECK(e.numel() == 0);
  CHECK(sum(e).item() == 0.0);
  CHECK(cat({e, ones({1, 3})}, 0).shape() == Shape{1, 3});
  REQUIRE_THROWS_WITH(mean(e), Catch::Contains("mean: cannot average an empty set"));
}
