// nl::Error and the helpers that build its messages.
//
// Every misuse of the library throws nl::Error. A message names the op, the argument and what was expected
// against what was given, e.g.
//   matmul: a has shape [8, 3] but b has shape [4, 5]: inner dimensions 3 and 4 differ
// Shapes are always written as [8, 3, 32, 32]. User input never reaches an assert that aborts.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace nl {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// "[8, 3, 32, 32]"
std::string shape_str(const std::vector<int64_t>& shape);

namespace detail {
inline void append(std::ostringstream&) {}
template <class T, class... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest) {
  if constexpr (std::is_same_v<T, std::vector<int64_t>>)
    os << shape_str(first);
  else
    os << first;
  append(os, rest...);
}
}  // namespace detail

// Concatenates its arguments into a message; std::vector<int64_t> arguments print as shapes.
template <class... Args>
std::string cat_str(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  return os.str();
}

// Throws nl::Error(cat_str(args...)) unless cond holds.
template <class... Args>
void check(bool cond, const Args&... args) {
  if (!cond) throw Error(cat_str(args...));
}

}  // namespace nl
