// ScopedEnv: an environment variable set (or unset) for one scope, restored (its old value, or its
// absence) when the scope ends. For switching kernel settings that are read from the environment
// at every call (HYSCALE_ATTN_WGMMA, HYSCALE_DIFF_ATTN, ...) in benchmarks and tests.
#pragma once
#include <cstdlib>
#include <string>

namespace hyscale {

class ScopedEnv {
 public:
  // Remembers `name`'s current state only; the scope may then change it freely.
  explicit ScopedEnv(const char* name) : name_(name) {
    const char* o = std::getenv(name);
    had_ = o != nullptr;
    if (had_) old_ = o;
  }
  // Sets `name` to `value` (nullptr: unsets it) for the scope.
  ScopedEnv(const char* name, const char* value) : ScopedEnv(name) {
    if (value != nullptr) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_) setenv(name_.c_str(), old_.c_str(), 1);
    else unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_, old_;
  bool had_ = false;
};

}  // namespace hyscale
