// Criss-cross attention, host side: the entry points of each device, the checks they share and small
// tensor helpers. The per-element arithmetic the kernels run is in criss_cross_utils.h.
#pragma once

#include <tuple>

#include <ATen/ATen.h>

#include "criss_cross_utils.h"

namespace ccnet_d2 {

// Geometry of a [B, C, H, W] tensor.
inline CrossGeometry geometry_of(const at::Tensor& t) {
  return CrossGeometry{t.size(0), t.size(1), t.size(2), t.size(3)};
}

// Uninitialised [B, L, H, W] attention buffer in the accumulation type of the query's dtype.
inline at::Tensor new_attention(const at::Tensor& query) {
  const auto acc = query.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return at::empty({query.size(0), query.size(2) + query.size(3) - 1, query.size(2), query.size(3)},
                   query.options().dtype(acc));
}

// Entry points, one per device. `attention_weights` returns [B, L, H, W] in the accumulation type;
// the backward returns (grad_query, grad_key, grad_value) and recomputes the attention.
at::Tensor attention_weights_cpu(const at::Tensor& query, const at::Tensor& key);
at::Tensor forward_cpu(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value);
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cpu(const at::Tensor& grad_output, const at::Tensor& query,
                                                            const at::Tensor& key, const at::Tensor& value);
#ifdef CCNET_WITH_CUDA
at::Tensor attention_weights_cuda(const at::Tensor& query, const at::Tensor& key);
at::Tensor forward_cuda(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value);
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cuda(const at::Tensor& grad_output, const at::Tensor& query,
                                                             const at::Tensor& key, const at::Tensor& value);
#endif

// Argument checks shared by both devices (criss_cross.cpp); `where` names the caller in the error.
// check_inputs: 4-D, matching shapes, one floating dtype, one device. check_grad_output: grad_output
// has the value's shape, dtype and device.
void check_inputs(const char* where, const at::Tensor& query, const at::Tensor& key, const at::Tensor& value);
void check_grad_output(const char* where, const at::Tensor& grad_output, const at::Tensor& value);

}  // namespace ccnet_d2
