#include "core/profiler.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/storage.h"
#ifdef HYSCALE_WITH_CUDA
#include "kernels/cuda.h"
#endif

namespace hyscale::prof {

namespace {
thread_local const char* g_scope = "";
struct Mark {
  const char* phase;
  const char* scope;
  const char* name;
  void* event;  // CUDA: a timing event; CPU: unused
  std::chrono::steady_clock::time_point t;
};
struct Total {
  double ms = 0;
  int64_t calls = 0;
};
struct State {
  bool on = false;
  bool cuda = false;
  std::vector<Mark> marks;   // this step's
  std::vector<void*> pool;   // CUDA events for reuse
  size_t used = 0;           // events of the pool in use this step
  std::map<std::tuple<std::string, std::string, std::string>, Total> totals;
  int64_t steps = 0;
};
State& st() {
  static State s;
  return s;
}
void* next_event() {
  State& s = st();
  if (s.used == s.pool.size()) s.pool.push_back(cudart::timing_event_create());
  return s.pool[s.used++];
}
}  // namespace

bool enabled() { return st().on; }

const char* scope() { return g_scope; }
Scope::Scope(const char* name) : prev_(g_scope) { g_scope = name; }
Scope::~Scope() { g_scope = prev_; }
void Scope::set(const char* name) { g_scope = name; }

void start(const Device& device) {
  stop();
  State& s = st();
  s.on = true;
  s.cuda = device.is_cuda();
  if (s.cuda) {
    cudart::set_device(device.index);
#ifdef HYSCALE_WITH_CUDA
    // The phases of multi-kernel ops, charged under phase "kern" (their op's own row keeps the rest).
    kernels::cuda::set_phase_hook([](const char* name) { mark_in("kern", "", name); });
#endif
  }
}

void stop() {
  State& s = st();
#ifdef HYSCALE_WITH_CUDA
  if (s.cuda) kernels::cuda::set_phase_hook(nullptr);
#endif
  for (void* e : s.pool) cudart::timing_event_destroy(e);
  s = State{};
}

void mark(const char* phase, const char* name) { mark_in(phase, g_scope, name); }

void mark_in(const char* phase, const char* scope, const char* name) {
  State& s = st();
  if (!s.on) return;
  Mark m{phase, scope ? scope : "", name, nullptr, {}};
  if (s.cuda) {
    m.event = next_event();
    cudart::timing_event_record(m.event);
  } else {
    m.t = std::chrono::steady_clock::now();
  }
  s.marks.push_back(m);
}

void begin_step() {
  State& s = st();
  if (!s.on) return;
  s.marks.clear();
  s.used = 0;
  mark("", "");
}

void end_step() {
  State& s = st();
  if (!s.on || s.marks.empty()) return;
  for (size_t i = 1; i < s.marks.size(); ++i) {
    const Mark &a = s.marks[i - 1], &b = s.marks[i];
    const double ms = s.cuda ? cudart::timing_elapsed_ms(a.event, b.event)
                             : std::chrono::duration<double, std::milli>(b.t - a.t).count();
    Total& t = s.totals[{b.phase, b.scope, b.name}];
    t.ms += ms;
    t.calls += 1;
  }
  s.marks.clear();
  s.used = 0;
  s.steps += 1;
}

std::vector<Row> rows() {
  State& s = st();
  std::vector<Row> out;
  if (s.steps == 0) return out;
  const double n = static_cast<double>(s.steps);
  for (const auto& [key, t] : s.totals) {
    const auto& [phase, sc, name] = key;
    out.push_back(Row{phase, sc, name, t.calls / n, t.ms / n});
  }
  std::stable_sort(out.begin(), out.end(), [](const Row& a, const Row& b) { return a.ms > b.ms; });
  return out;
}

std::string report(int top) {
  const std::vector<Row> rs = rows();
  HS_CHECK(!rs.empty(), "profiler: no step was profiled");
  double sum = 0;
  for (const Row& r : rs) sum += r.ms;
  std::string out;
  char line[200];
  std::snprintf(line, sizeof line, "op profile (%s time per step, mean of %lld steps)\n%-6s %-32s %8s %12s %8s\n",
                st().cuda ? "GPU" : "wall", (long long)st().steps, "phase", "scope/op", "calls", "ms/step", "share");
  out += line;
  int shown = 0;
  double rest = 0;
  for (const Row& r : rs) {
    if (shown++ >= top) {
      rest += r.ms;
      continue;
    }
    const std::string op = r.scope.empty() ? r.name : r.scope + "/" + r.name;
    std::snprintf(line, sizeof line, "%-6s %-32s %8.0f %12.3f %7.1f%%\n", r.phase.c_str(), op.c_str(), r.calls, r.ms,
                  sum > 0 ? 100 * r.ms / sum : 0.0);
    out += line;
  }
  if (rest > 0) {
    std::snprintf(line, sizeof line, "%-6s %-32s %8s %12.3f %7.1f%%\n", "", "(the rest)", "", rest, 100 * rest / sum);
    out += line;
  }
  std::snprintf(line, sizeof line, "%-6s %-32s %8s %12.3f %7.1f%%\n", "", "total", "", sum, 100.0);
  out += line;
  return out;
}

}  // namespace hyscale::prof
