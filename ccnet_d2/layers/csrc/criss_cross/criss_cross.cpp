// Argument checks shared by the CPU and the CUDA entry points.
#include "criss_cross.h"

namespace ccnet_d2 {

void check_inputs(const char* where, const at::Tensor& query, const at::Tensor& key, const at::Tensor& value) {
  TORCH_CHECK(query.dim() == 4 && key.dim() == 4 && value.dim() == 4, where,
              ": query, key and value must be 4-D [B, C, H, W], got ", query.sizes(), ", ", key.sizes(),
              " and ", value.sizes());
  TORCH_CHECK(query.sizes() == key.sizes(), where, ": query and key must have one shape [B, C', H, W], got ",
              query.sizes(), " and ", key.sizes());
  TORCH_CHECK(value.size(0) == query.size(0) && value.size(2) == query.size(2) && value.size(3) == query.size(3),
              where, ": value must be [B, C, H, W] with the query's B, H, W, got query ", query.sizes(),
              " and value ", value.sizes());
  TORCH_CHECK(query.size(2) >= 1 && query.size(3) >= 1, where, ": H and W must be >= 1, got ", query.sizes());
  TORCH_CHECK(query.scalar_type() == key.scalar_type() && query.scalar_type() == value.scalar_type(), where,
              ": query, key and value must share one dtype, got ", query.scalar_type(), ", ", key.scalar_type(),
              " and ", value.scalar_type());
  const auto t = query.scalar_type();
  TORCH_CHECK(t == at::kFloat || t == at::kHalf || t == at::kBFloat16 || t == at::kDouble, where,
              ": expected float32, float16, bfloat16 or float64 tensors, got ", t);
  TORCH_CHECK(query.device() == key.device() && query.device() == value.device(), where,
              ": query, key and value must be on one device, got ", query.device(), ", ", key.device(), " and ",
              value.device());
}

void check_grad_output(const char* where, const at::Tensor& grad_output, const at::Tensor& value) {
  TORCH_CHECK(grad_output.sizes() == value.sizes() && grad_output.scalar_type() == value.scalar_type() &&
                  grad_output.device() == value.device(),
              where, ": grad_output must match value (", value.sizes(), ", ", value.scalar_type(), ", ",
              value.device(), "), got ", grad_output.sizes(), ", ", grad_output.scalar_type(), ", ",
              grad_output.device());
}

}  // namespace ccnet_d2
