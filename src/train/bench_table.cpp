#include "train/bench_table.h"

#include "core/error.h"

namespace hyscale::train {

BenchRow BenchTable::add(const std::string& name, double ms, double amount, const std::string& unit,
                         double ceiling) {
  HS_CHECK(unit == "GB/s" || unit == "TFLOP/s", "bench row '", name, "': unknown unit '", unit, "'");
  HS_CHECK(ms > 0, "bench row '", name, "': time ", ms, " ms");
  BenchRow r{name, ms, amount / ms / (unit == "GB/s" ? 1e6 : 1e9), unit, ceiling};
  rows_.push_back(r);
  const double pct = ceiling > 0 ? 100 * r.value / ceiling : 0.0;
  const char* fmt = unit == "GB/s" ? "%-34s %10.3f %12.0f %9.0f%%\n" : "%-34s %10.3f %12.1f %9.0f%%\n";
  std::fprintf(out_, fmt, name.c_str(), ms, r.value, pct);
  return r;
}

std::string BenchTable::base_of(const std::string& name) {
  const size_t open = name.rfind(" [");
  return open == std::string::npos || name.back() != ']' ? name : name.substr(0, open);
}

std::vector<std::pair<const BenchRow*, const BenchRow*>> BenchTable::alternatives() const {
  std::vector<std::pair<const BenchRow*, const BenchRow*>> out;
  for (const BenchRow& row : rows_) {
    const std::string base = base_of(row.name);
    if (base == row.name) continue;
    const BenchRow* ref = nullptr;
    for (const BenchRow& r : rows_)
      if (r.name == base) ref = &r;
    if (ref == nullptr)
      for (const BenchRow& r : rows_)
        if (base_of(r.name) == base) {
          ref = &r;
          break;
        }
    if (ref != nullptr && ref != &row) out.emplace_back(&row, ref);
  }
  return out;
}

void BenchTable::print_alternatives() const {
  std::fprintf(out_, "\nalternatives: time / the reference row's time (< 1: the alternative is faster)\n");
  for (const auto& [alt, ref] : alternatives())
    std::fprintf(out_, "  %-62s %6.3f  (%.3f ms vs %.3f ms of \"%s\")\n", alt->name.c_str(), alt->ms / ref->ms, alt->ms,
                 ref->ms, ref->name.c_str());
}

nlohmann::json BenchTable::rows_json() const {
  nlohmann::json a = nlohmann::json::array();
  for (const BenchRow& r : rows_)
    a.push_back({{"name", r.name}, {"ms", r.ms}, {"value", r.value}, {"unit", r.unit}, {"ceiling", r.ceiling}});
  return a;
}

}  // namespace hyscale::train
