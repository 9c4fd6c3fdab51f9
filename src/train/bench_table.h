// The rows of `hyscale bench kernels` (train/bench_kernels.cpp): each printed as it is timed and
// kept for the closing "alternatives" table (every "NAME [variant]" row against its default row)
// and for `--json`, which scripts/bench_compare.py joins with the PyTorch references
// (scripts/bench_torch_ref.py) into the ratio table. Host code only: unit-tested on the CPU.
#pragma once
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace hyscale::train {

struct BenchRow {
  std::string name;
  double ms = 0;        // time per call
  double value = 0;     // in `unit`
  std::string unit;     // "GB/s" or "TFLOP/s"
  double ceiling = 0;   // the same unit's ceiling measured in the run (copy GB/s, GEMM TFLOP/s)
};

class BenchTable {
 public:
  explicit BenchTable(std::FILE* out = stdout) : out_(out) {}
  // A row of `amount` bytes (unit "GB/s") or FLOPs ("TFLOP/s") done in `ms`; printed at once.
  BenchRow add(const std::string& name, double ms, double amount, const std::string& unit, double ceiling);
  const std::vector<BenchRow>& rows() const { return rows_; }
  // "NAME [variant]" -> "NAME"; a name without a trailing bracketed suffix is its own base.
  static std::string base_of(const std::string& name);
  // Each variant row with the row it is compared with: the row named its base (the default), or,
  // where every row of that base carries a variant (e.g. [fused] / [split]), the first of them.
  std::vector<std::pair<const BenchRow*, const BenchRow*>> alternatives() const;
  void print_alternatives() const;
  nlohmann::json rows_json() const;

 private:
  std::FILE* out_;
  std::vector<BenchRow> rows_;
};

}  // namespace hyscale::train
