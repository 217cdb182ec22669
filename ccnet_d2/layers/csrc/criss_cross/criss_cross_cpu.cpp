// CPU criss-cross attention: the functions of criss_cross_utils.h run under at::parallel_for, one output
// element per call. It exists so that CPU machines (CI) test the exact arithmetic of the CUDA kernels,
// the op registration, autograd and torch.compile support; for speed on CPU use backend="torch".
#include "criss_cross.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

namespace ccnet_d2 {

namespace {

constexpr int64_t kGrain = 2048;

// Runs fn(index) for index in [0, n) in parallel.
template <typename Fn>
void parallel_elements(int64_t n, const Fn& fn) {
  at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) fn(i);
  });
}

// Energies then softmax into `attention` ([B, L, H, W], accumulation type).
template <typename scalar_t, typename acc_t>
void compute_attention(const at::Tensor& q, const at::Tensor& k, at::Tensor& attention) {
  const CrossGeometry g = geometry_of(q);
  const scalar_t* qp = q.data_ptr<scalar_t>();
  const scalar_t* kp = k.data_ptr<scalar_t>();
  acc_t* ap = attention.data_ptr<acc_t>();
  parallel_elements(attention.numel(), [&](int64_t i) { ap[i] = cross_dot<scalar_t, acc_t>(i, qp, kp, g); });
  parallel_elements(g.batch * g.plane(), [&](int64_t i) { cross_softmax<acc_t>(i, ap, g); });
}

}  // namespace

at::Tensor attention_weights_cpu(const at::Tensor& query, const at::Tensor& key) {
  check_inputs("criss_cross_attention_weights (CPU)", query, key, key);
  TORCH_CHECK(query.is_cpu(), "criss_cross_attention_weights (CPU): expected CPU tensors, got ", query.device());
  const auto q = query.contiguous(), k = key.contiguous();
  auto attention = new_attention(q);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "criss_cross_attention_weights_cpu", [&] {
    compute_attention<scalar_t, at::opmath_type<scalar_t>>(q, k, attention);
  });
  return attention;
}

at::Tensor forward_cpu(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value) {
  check_inputs("criss_cross_attention (CPU)", query, key, value);
  TORCH_CHECK(query.is_cpu(), "criss_cross_attention (CPU): expected CPU tensors, got ", query.device());
  const auto attention = attention_weights_cpu(query, key);
  const auto v = value.contiguous();
  auto output = at::empty_like(v, at::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, v.scalar_type(), "criss_cross_attention_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const CrossGeometry g = geometry_of(v);
    const acc_t* ap = attention.data_ptr<acc_t>();
    const scalar_t* vp = v.data_ptr<scalar_t>();
    scalar_t* op = output.data_ptr<scalar_t>();
    parallel_elements(output.numel(), [&](int64_t i) {
      op[i] = static_cast<scalar_t>(cross_aggregate<scalar_t, acc_t>(i, ap, vp, g));
    });
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cpu(const at::Tensor& grad_output, const at::Tensor& query,
                                                            const at::Tensor& key, const at::Tensor& value) {
  check_inputs("criss_cross_attention_backward (CPU)", query, key, value);
  TORCH_CHECK(query.is_cpu() && grad_output.is_cpu(), "criss_cross_attention_backward (CPU): expected CPU tensors");
  check_grad_output("criss_cross_attention_backward (CPU)", grad_output, value);
  const auto q = query.contiguous(), k = key.contiguous(), v = value.contiguous(), go = grad_output.contiguous();
  const auto attention = attention_weights_cpu(q, k);
  auto grad_energy = at::empty_like(attention);
  auto grad_query = at::empty_like(q), grad_key = at::empty_like(k), grad_value = at::empty_like(v);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, v.scalar_type(), "criss_cross_attention_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const CrossGeometry gv = geometry_of(v), gq = geometry_of(q);
    const acc_t* ap = attention.data_ptr<acc_t>();
    acc_t* ep = grad_energy.data_ptr<acc_t>();
    const scalar_t *qp = q.data_ptr<scalar_t>(), *kp = k.data_ptr<scalar_t>(), *vp = v.data_ptr<scalar_t>(),
                   *gp = go.data_ptr<scalar_t>();
    scalar_t *dq = grad_query.data_ptr<scalar_t>(), *dk = grad_key.data_ptr<scalar_t>(),
             *dv = grad_value.data_ptr<scalar_t>();
    parallel_elements(grad_energy.numel(), [&](int64_t i) { ep[i] = cross_dot<scalar_t, acc_t>(i, gp, vp, gv); });
    parallel_elements(gv.batch * gv.plane(), [&](int64_t i) { cross_softmax_backward<acc_t>(i, ap, ep, gv); });
    parallel_elements(grad_value.numel(), [&](int64_t i) {
      dv[i] = static_cast<scalar_t>(cross_aggregate_transposed<scalar_t, acc_t>(i, ap, gp, gv));
    });
    parallel_elements(grad_query.numel(), [&](int64_t i) {
      dq[i] = static_cast<scalar_t>(cross_aggregate<scalar_t, acc_t>(i, ep, kp, gq));
    });
    parallel_elements(grad_key.numel(), [&](int64_t i) {
      dk[i] = static_cast<scalar_t>(cross_aggregate_transposed<scalar_t, acc_t>(i, ep, qp, gq));
    });
  });
  return {grad_query, grad_key, grad_value};
}

}  // namespace ccnet_d2
