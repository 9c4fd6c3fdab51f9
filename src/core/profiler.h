// Where a training step's time goes, op by op, without an external profiler (the lent GPU
// machines have no nsys): `hyscale bench train --profile`.
//
// Every autograd node marks the clock when it is recorded (forward) and when its backward has run
// (with the gradient accumulation that follows it); the time between one mark and the previous
// one is charged to the later mark's (phase, name). On a CUDA device the marks are events on the
// default stream, so the times are GPU times, including any gap the GPU spent waiting for the
// host; on the CPU they are wall-clock times (CPU kernels are synchronous). Work that records no
// node (a view's contiguous copy, a cast) is charged to the next node recorded. On CUDA, ops that
// launch several kernels (selective scan, attention backward) also mark after each launch: those
// rows have phase "kern" and the kernel's name, and the op's own row keeps only the rest. The marks cost a
// few microseconds each, so profiled steps run slightly slower than unprofiled ones.
#pragma once
#include <string>
#include <vector>

#include "core/device.h"

namespace hyscale::prof {

bool enabled();
// Starts collecting for `device` (CPU or one CUDA device); stop() ends it and frees the events.
void start(const Device& device);
void stop();
// Marks the clock: the time since the previous mark goes to (phase, scope, name), the scope
// being the current Scope's. The strings must outlive the profile (string literals; autograd
// node names are).
void mark(const char* phase, const char* name);
void mark_in(const char* phase, const char* scope, const char* name);

// Names the part of the model that the ops recorded in its lifetime belong to ("mamba", "mlp",
// ...); a node keeps its forward scope for its backward. Scopes do not nest: the innermost wins.
const char* scope();
class Scope {
 public:
  explicit Scope(const char* name);
  ~Scope();
  void set(const char* name);
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* prev_;
};
// First mark of a step (its time is not charged to anything).
void begin_step();
// Waits for the step's marks, adds their times to the totals and counts one step.
void end_step();
// The totals per step (means over the profiled steps), largest first.
struct Row {
  std::string phase, scope, name;
  double calls = 0;  // per step
  double ms = 0;     // per step
};
std::vector<Row> rows();
// The same as a table: phase, scope/op, calls, ms per step, share of the total.
std::string report(int top = 40);

}  // namespace hyscale::prof
