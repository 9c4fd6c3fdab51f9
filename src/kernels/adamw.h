// AdamW (decoupled weight decay), matching torch.optim.AdamW's update order:
//   p *= 1 - lr*wd
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= (lr / (1-b1^t)) * m / (sqrt(v) / sqrt(1-b2^t) + eps)
// p, g, m, v are [n] contiguous fp32 (master weights and moments stay fp32). The gradient used is
// g * grad_scale (gradient clipping folded into the step: the same float product a separate
// scaling pass would store, so the result is bit-identical to clipping first).
#pragma once
#include <cstdint>

namespace hyscale::kernels::cpu {

void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                float eps, float weight_decay, int64_t step, float grad_scale = 1.0f);

}  // namespace hyscale::kernels::cpu
