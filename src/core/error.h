// hyscale::Error — the one exception type of the project.
// Errors say what, where, and what was expected (DESIGN.md "Conventions").
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace hyscale {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

// HS_CHECK(cond, parts...): throw hyscale::Error with the concatenated message.
#define HS_CHECK(cond, ...)                                                        \
  do {                                                                             \
    if (!(cond)) throw ::hyscale::Error(::hyscale::detail::cat(__VA_ARGS__));     \
  } while (0)

#define HS_FAIL(...) throw ::hyscale::Error(::hyscale::detail::cat(__VA_ARGS__))

}  // namespace hyscale
