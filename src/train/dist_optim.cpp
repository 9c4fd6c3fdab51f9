#include "train/dist_optim.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/storage.h"
#include "kernels/adamw.h"
#include "kernels/elementwise.h"
#ifdef HYSCALE_WITH_CUDA
#include "kernels/cuda.h"
#endif

namespace hyscale::train {

namespace kc = hyscale::kernels::cpu;

namespace {
// Whole-tensor fp32 helpers for the device the tensor lives on (parameters, gradients and
// moments of one optimizer share a device).
double sum_squares_of(const Tensor& g) {
#ifdef HYSCALE_WITH_CUDA
  if (g.device().is_cuda()) return kernels::cuda::sum_squares(g.data<float>(), g.numel());
#endif
  return kc::sum_squares(g.data<float>(), g.numel());
}
void scale_in_place(const Tensor& g, float f) {
#ifdef HYSCALE_WITH_CUDA
  if (g.device().is_cuda()) return kernels::cuda::scale<float>(g.data<float>(), f, g.data<float>(), g.numel());
#endif
  kc::scale(g.data<float>(), f, g.data<float>(), g.numel());
}
// out = src * f, src: g.numel() floats on g's device (a slice of a gradient bucket).
void scale_into(const float* src, float f, const Tensor& out) {
#ifdef HYSCALE_WITH_CUDA
  if (out.device().is_cuda()) return kernels::cuda::scale<float>(src, f, out.data<float>(), out.numel());
#endif
  kc::scale(src, f, out.data<float>(), out.numel());
}
// The same on raw ranges of a buffer living on `dev` (ZeRO shards).
void scale_range(float* x, float f, int64_t n, const Device& dev) {
#ifdef HYSCALE_WITH_CUDA
  if (dev.is_cuda()) return kernels::cuda::scale<float>(x, f, x, n);
#endif
  kc::scale(x, f, x, n);
}
}  // namespace

DistributedAdamW::DistributedAdamW(const std::vector<std::pair<std::string, Tensor>>& params,
                                   const std::vector<std::pair<std::string, nn::ShardSpec>>& specs,
                                   const OptimizerConfig& cfg, const parallel::Grid& grid, double bucket_mb, bool zero)
    : cfg_(cfg), grid_(grid), zero_(zero && grid.dp > 1) {
  HS_CHECK(params.size() == specs.size(), "optimizer: ", params.size(), " parameters but ", specs.size(), " shard specs");
  for (size_t i = 0; i < params.size(); ++i) {
    const auto& [name, p] = params[i];
    HS_CHECK(p.dtype() == DType::f32 && p.is_contiguous(), "optimizer: parameter '", name,
             "' must be a contiguous f32 tensor (the fp32 master weights), got ", p.desc());
    HS_CHECK(p.device() == params[0].second.device(), "optimizer: parameter '", name, "' is on ", p.device().str(),
             ", the first parameter on ", params[0].second.device().str());
    // Device parameters with dp > 1: the buckets (and ZeRO-1's shards) live on the device and
    // are reduced over the grid's device communicator (NCCL).
    HS_CHECK(p.device().is_cpu() || grid.dp == 1 || grid.dp_dev_comm, "optimizer: data-parallel training (dp = ",
             grid.dp, ") of parameters on ", p.device().str(), " needs the grid's device communicator (dp_dev_comm, NCCL)");
    HS_CHECK(specs[i].first == name, "optimizer: shard spec order does not match the parameters at '", name, "'");
    params_.push_back(DistParam{name, p, specs[i].second, is_vector_param(name, p) ? 1 : 0, 0, 0});
  }
  got_.assign(params_.size(), 0);
  if (!zero_)
    for (auto& dp : params_) {
      m_.push_back(Tensor::zeros(dp.p.shape(), DType::f32, dp.p.device()));
      v_.push_back(Tensor::zeros(dp.p.shape(), DType::f32, dp.p.device()));
    }
  if (grid_.dp > 1) {
    // Buckets in backward order: the last-registered parameters get their gradients first.
    const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(bucket_mb * 1024 * 1024 / 4));
    for (size_t k = params_.size(); k-- > 0;) {
      if (buckets_.empty() || (buckets_.back().n > 0 && buckets_.back().n + params_[k].p.numel() > cap))
        buckets_.emplace_back();
      Bucket& b = buckets_.back();
      params_[k].bucket = static_cast<int64_t>(buckets_.size()) - 1;
      params_[k].offset = b.n;
      b.members.push_back(k);
      b.n += params_[k].p.numel();
    }
    const int64_t dp = grid_.dp;
    for (auto& b : buckets_) {
      b.n_pad = (b.n + dp - 1) / dp * dp;
      b.shard = b.n_pad / dp;
      const Device dev = params_[0].p.device();
      b.grad_buf = Tensor::zeros({b.n_pad}, DType::f32, dev);
      if (zero_) {
        b.grad_shard = Tensor::zeros({b.shard}, DType::f32, dev);
        b.m = Tensor::zeros({b.shard}, DType::f32, dev);
        b.v = Tensor::zeros({b.shard}, DType::f32, dev);
      }
    }
    for (size_t i = 0; i < params_.size(); ++i) {
      auto alive = alive_;
      params_[i].p.add_grad_ready_hook([this, i, alive](Tensor& g) {
        if (*alive) on_grad_ready(i, g);
      });
    }
  }
}

DistributedAdamW::~DistributedAdamW() {
  *alive_ = false;
  // Complete what is in flight, but never throw from here: while an error (e.g. NCCL's) unwinds
  // the stack, a throw would terminate the process before the error is reported and the other
  // ranks aborted.
  for (auto& b : buckets_)
    if (b.req) try {
        b.req->wait();
      } catch (...) {
      }
}

bool DistributedAdamW::counted_once(const DistParam& p) const { return p.spec.dim >= 0 || grid_.tp_rank == 0; }

void DistributedAdamW::zero_grad() {
  for (auto& dp : params_) dp.p.zero_grad();
}

void DistributedAdamW::arm() {
  if (grid_.dp == 1) return;
  armed_ = true;
  next_launch_ = 0;
  std::fill(got_.begin(), got_.end(), 0);
  for (auto& b : buckets_) {
    b.pending = static_cast<int64_t>(b.members.size());
    b.launched = false;
  }
}

void DistributedAdamW::on_grad_ready(size_t i, const Tensor& g) {
  if (!armed_ || got_[i]) return;
  const DistParam& dp = params_[i];
  Bucket& b = buckets_[static_cast<size_t>(dp.bucket)];
  Tensor gc = g.contiguous();
  HS_CHECK(gc.numel() == dp.p.numel() && gc.dtype() == DType::f32, "optimizer: gradient of '", dp.name,
           "' has the wrong shape or dtype");
  copy_bytes(b.grad_buf.data<float>() + dp.offset, b.grad_buf.device(), gc.data<float>(), gc.device(),
             static_cast<size_t>(gc.numel()) * 4);
  got_[i] = 1;
  if (--b.pending == 0) launch_ready();
}

parallel::Communicator& DistributedAdamW::comm_for(const Tensor& buf) const {
  // Device buffers go over the device communicator (NCCL), host ones over MPI.
  return buf.device().is_cuda() ? *grid_.dp_dev_comm : *grid_.dp_comm;
}

void DistributedAdamW::launch(Bucket& b) {
  auto& comm = comm_for(b.grad_buf);
  if (zero_)
    b.req = comm.ireduce_scatter(b.grad_buf.data<float>(), b.grad_shard.data<float>(), b.shard, DType::f32);
  else
    b.req = comm.iallreduce(b.grad_buf.data<float>(), b.n_pad, DType::f32);
  b.launched = true;
}

void DistributedAdamW::launch_ready() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) launch(buckets_[next_launch_++]);
}

void DistributedAdamW::finish_backward() {
  if (grid_.dp == 1) return;
  HS_CHECK(armed_, "optimizer: finish_backward without arm()");
  // Parameters whose hook did not fire in the armed backward: their gradient from earlier
  // micro-batches (if any) is taken as it is, no gradient at all counts as zeros (every rank
  // must still join every bucket).
  for (auto& b : buckets_) {
    if (b.pending == 0) continue;
    for (size_t k : b.members)
      if (!got_[k]) {
        float* dst = b.grad_buf.data<float>() + params_[k].offset;
        const Device& dev = b.grad_buf.device();
        const size_t bytes = static_cast<size_t>(params_[k].p.numel()) * 4;
        Tensor g = params_[k].p.grad();
        if (g.defined()) {
          Tensor gc = g.contiguous();
          copy_bytes(dst, dev, gc.data<float>(), gc.device(), bytes);
        } else {
          zero_bytes(dst, dev, bytes);
        }
        got_[k] = 1;
      }
    b.pending = 0;
  }
  launch_ready();
  const float inv = 1.0f / static_cast<float>(grid_.dp);
  for (auto& b : buckets_) {
    b.req->wait();
    b.req.reset();
    if (zero_) {
      scale_range(b.grad_shard.data<float>(), inv, b.shard, b.grad_shard.device());
      continue;
    }
    for (size_t k : b.members) {
      Tensor& p = params_[k].p;
      Tensor g = p.grad();
      if (!g.defined()) {
        g = Tensor::zeros(p.shape(), DType::f32, p.device());
        p.set_grad(g);
      }
      scale_into(b.grad_buf.data<float>() + params_[k].offset, inv, g);
    }
  }
  armed_ = false;
}

double DistributedAdamW::grad_norm() {
  double ss = 0;
  if (zero_) {
    std::vector<const float*> ptrs;  // this rank's slice of every counted parameter
    std::vector<int64_t> ns;
    for (auto& b : buckets_) {
      const int64_t s0 = b.shard * grid_.dp_rank, s1 = s0 + b.shard;
      for (size_t k : b.members) {
        const DistParam& dp = params_[k];
        const int64_t a = std::max(s0, dp.offset), e = std::min(s1, dp.offset + dp.p.numel());
        if (a < e && counted_once(dp)) ptrs.push_back(b.grad_shard.data<float>() + (a - s0)), ns.push_back(e - a);
      }
    }
    const bool dev = !buckets_.empty() && buckets_[0].grad_shard.device().is_cuda();
    if (!dev) {
      for (size_t j = 0; j < ptrs.size(); ++j) ss += kc::sum_squares(ptrs[j], ns[j]);
    } else {
#ifdef HYSCALE_WITH_CUDA
      std::vector<double> per(ptrs.size());  // one batched reduction, one synchronisation
      kernels::cuda::sum_squares_many(ptrs.data(), ns.data(), static_cast<int64_t>(ptrs.size()), per.data());
      for (double x : per) ss += x;
#endif
    }
    grid_.dp_comm->allreduce(&ss, 1, DType::f64);
  } else {
    std::vector<const float*> dev_ptrs;  // device gradients: one batched reduction, one sync
    std::vector<int64_t> dev_ns;
    for (auto& dp : params_) {
      Tensor g = dp.p.grad();
      if (!g.defined() || !counted_once(dp)) continue;
      if (g.device().is_cuda()) {
        dev_ptrs.push_back(g.data<float>());
        dev_ns.push_back(g.numel());
      } else {
        ss += sum_squares_of(g);
      }
    }
#ifdef HYSCALE_WITH_CUDA
    std::vector<double> per(dev_ptrs.size());
    kernels::cuda::sum_squares_many(dev_ptrs.data(), dev_ns.data(), static_cast<int64_t>(dev_ptrs.size()), per.data());
    for (double x : per) ss += x;  // parameter order, as the per-tensor loop did
#endif
  }
  if (grid_.tp > 1) grid_.tp_comm->allreduce(&ss, 1, DType::f64);
  return std::sqrt(ss);
}

void DistributedAdamW::scale_grads(double factor) {
  const float f = static_cast<float>(factor);
  if (zero_) {
    for (auto& b : buckets_) scale_range(b.grad_shard.data<float>(), f, b.shard, b.grad_shard.device());
    return;
  }
  for (auto& dp : params_) {
    Tensor g = dp.p.grad();
    if (g.defined()) scale_in_place(g, f);
  }
}

void DistributedAdamW::set_compute_copies(std::vector<Tensor> copies) {
  HS_CHECK(copies.empty() || copies.size() == params_.size(), "optimizer: ", copies.size(), " compute copies for ",
           params_.size(), " parameters");
  for (size_t i = 0; i < copies.size(); ++i) {
    const Tensor& c = copies[i];
    if (!c.defined()) continue;
    const Tensor& p = params_[i].p;
    HS_CHECK(p.device().is_cuda() && c.device() == p.device() && c.dtype() == DType::bf16 && c.is_contiguous() &&
                 c.shape() == p.shape(),
             "optimizer: the compute copy of '", params_[i].name, "' must be a contiguous bf16 tensor of shape ",
             shape_str(p.shape()), " on ", p.device().str(), " (a cuda parameter), got ", c.desc());
  }
  copies_ = std::move(copies);
}

void DistributedAdamW::step(double lr, double grad_scale) {
  ++step_;
  const float gs = static_cast<float>(grad_scale);
  const double mult[2] = {cfg_.matrix_lr_mult, cfg_.vector_lr_mult};
  const double wd[2] = {cfg_.weight_decay, cfg_.vector_weight_decay};
  // copy: the parameter's bf16 compute copy to rewrite (cuda only), or undefined.
  auto update = [&](float* p, const float* g, float* m, float* v, int64_t n, int group, const Tensor& copy = Tensor()) {
#ifdef HYSCALE_WITH_CUDA
    if (!params_.empty() && params_[0].p.device().is_cuda())
      return kernels::cuda::adamw_step(
          p, g, m, v, n, static_cast<float>(lr * mult[group]), static_cast<float>(cfg_.beta1),
          static_cast<float>(cfg_.beta2), static_cast<float>(cfg_.eps), static_cast<float>(wd[group]), step_, gs,
          copy.defined() ? static_cast<kernels::cuda::bf16*>(copy.raw_data()) : nullptr);
#endif
    HS_CHECK(!copy.defined(), "optimizer: compute copies on the cpu");
    kc::adamw_step(p, g, m, v, n, static_cast<float>(lr * mult[group]), static_cast<float>(cfg_.beta1),
                   static_cast<float>(cfg_.beta2), static_cast<float>(cfg_.eps), static_cast<float>(wd[group]), step_,
                   gs);
  };
  if (!zero_) {
    for (size_t i = 0; i < params_.size(); ++i) {
      Tensor& p = params_[i].p;
      Tensor g = p.grad();
      // No gradient = a zero gradient (weight decay and momentum still act), as with dp > 1
      // where the reduction always yields one: the same run at every layout.
      if (!g.defined()) {
        g = Tensor::zeros(p.shape(), DType::f32, p.device());
        p.set_grad(g);
      }
      update(p.data<float>(), g.data<float>(), m_[i].data<float>(), v_[i].data<float>(), p.numel(), params_[i].group,
             copies_.empty() ? Tensor() : copies_[i]);
    }
    return;
  }
  gathered_bucket_ = -1;
  for (auto& b : buckets_) {
    // grad_buf is free once the reduce-scatter is done: it carries the parameters now.
    float* buf = b.grad_buf.data<float>();
    const Device& dev = b.grad_buf.device();
    const int64_t s0 = b.shard * grid_.dp_rank, s1 = s0 + b.shard;
    for (size_t k : b.members) {
      DistParam& dp = params_[k];
      const int64_t a = std::max(s0, dp.offset), e = std::min(s1, dp.offset + dp.p.numel());
      if (a >= e) continue;
      copy_bytes(buf + a, dev, dp.p.data<float>() + (a - dp.offset), dp.p.device(), static_cast<size_t>(e - a) * 4);
      update(buf + a, b.grad_shard.data<float>() + (a - s0), b.m.data<float>() + (a - s0),
             b.v.data<float>() + (a - s0), e - a, dp.group);
    }
    // Stream-ordered on GPUs (the copies below and the next bucket's AdamW queue behind it
    // without a host wait per bucket); synchronous over MPI.
    comm_for(b.grad_buf).allgather_ordered(buf + s0, buf, b.shard, DType::f32);
    for (size_t k : b.members) {
      DistParam& dp = params_[k];
      copy_bytes(dp.p.data<float>(), dp.p.device(), buf + dp.offset, dev, static_cast<size_t>(dp.p.numel()) * 4);
#ifdef HYSCALE_WITH_CUDA
      // The compute copy follows the gathered weights (the AdamW kernel wrote only this rank's
      // shard): the same round to nearest as the cast.
      if (!copies_.empty() && copies_[k].defined())
        kernels::cuda::cast_f32_bf16(dp.p.data<float>(), static_cast<kernels::cuda::bf16*>(copies_[k].raw_data()),
                                     dp.p.numel());
#endif
    }
  }
}

void DistributedAdamW::drop_gathered() {
  gathered_bucket_ = -1;
  gathered_[0] = gathered_[1] = Tensor();
}

Tensor DistributedAdamW::moment(size_t i, int which) {
  HS_CHECK(i < params_.size() && (which == 0 || which == 1), "optimizer: bad moment index");
  if (!zero_) return which == 0 ? m_[i] : v_[i];
  const DistParam& dp = params_[i];
  Bucket& b = buckets_[static_cast<size_t>(dp.bucket)];
  if (gathered_bucket_ != dp.bucket) {
    for (int w = 0; w < 2; ++w) {
      gathered_[w] = Tensor::empty({b.n_pad}, DType::f32, b.m.device());
      comm_for(b.m).allgather((w == 0 ? b.m : b.v).data<float>(), gathered_[w].data<float>(), b.shard, DType::f32);
    }
    gathered_bucket_ = dp.bucket;
  }
  Tensor out = Tensor::empty(dp.p.shape(), DType::f32, b.m.device());
  copy_bytes(out.data<float>(), out.device(), gathered_[which].data<float>() + dp.offset, gathered_[which].device(),
             static_cast<size_t>(out.numel()) * 4);
  return out;
}

void DistributedAdamW::set_moment(size_t i, int which, const Tensor& full_in) {
  HS_CHECK(i < params_.size() && (which == 0 || which == 1), "optimizer: bad moment index");
  const DistParam& dp = params_[i];
  Tensor full = full_in.contiguous();
  HS_CHECK(full.shape() == dp.p.shape() && full.dtype() == DType::f32, "optimizer: moment of '", dp.name, "' has shape ",
           shape_str(full.shape()), ", expected ", shape_str(dp.p.shape()));
  if (!zero_) {
    (which == 0 ? m_[i] : v_[i]).copy_from(full);
    return;
  }
  gathered_bucket_ = -1;
  Bucket& b = buckets_[static_cast<size_t>(dp.bucket)];
  const int64_t s0 = b.shard * grid_.dp_rank, s1 = s0 + b.shard;
  const int64_t a = std::max(s0, dp.offset), e = std::min(s1, dp.offset + dp.p.numel());
  Tensor& dst = which == 0 ? b.m : b.v;
  if (a < e)
    copy_bytes(dst.data<float>() + (a - s0), dst.device(), full.data<float>() + (a - dp.offset), full.device(),
               static_cast<size_t>(e - a) * 4);
}

int64_t DistributedAdamW::state_bytes() const {
  int64_t n = 0;
  if (zero_)
    for (auto& b : buckets_) n += 2 * b.shard * 4;
  else
    for (auto& dp : params_) n += 2 * dp.p.numel() * 4;
  return n;
}

}  // namespace hyscale::train
