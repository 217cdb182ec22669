// CUDA criss-cross attention: the functions of criss_cross_utils.h in grid-stride kernels, one thread per
// output element. Energies and the attention gradient run over (b, cross position, pixel), the
// softmax and its backward over (b, pixel), the aggregations over (b, channel, pixel); the pixel is
// the fastest index, so neighbouring threads read neighbouring addresses (or one broadcast address
// for the row entries). No atomics: every gradient element is gathered by exactly one thread.
#include "criss_cross.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace ccnet_d2 {

namespace {

constexpr int kThreads = 256;

// Enough blocks to fill the device (32 per SM), fewer for small problems; the loops stride over the rest.
int blocks_for(int64_t n) {
  int device = 0, sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  const int64_t max_blocks = int64_t(sms) * 32;
  const int64_t needed = (n + kThreads - 1) / kThreads;
  return static_cast<int>(needed < max_blocks ? needed : max_blocks);
}

#define CCNET_GRID_STRIDE_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(blockDim.x) * gridDim.x)

template <typename scalar_t, typename acc_t>
__global__ void cross_dot_kernel(int64_t n, const scalar_t* a, const scalar_t* x, acc_t* out, CrossGeometry g) {
  CCNET_GRID_STRIDE_LOOP(i, n) { out[i] = cross_dot<scalar_t, acc_t>(i, a, x, g); }
}

template <typename acc_t>
__global__ void cross_softmax_kernel(int64_t n, acc_t* attention, CrossGeometry g) {
  CCNET_GRID_STRIDE_LOOP(i, n) { cross_softmax<acc_t>(i, attention, g); }
}

template <typename acc_t>
__global__ void cross_softmax_backward_kernel(int64_t n, const acc_t* attention, acc_t* grad, CrossGeometry g) {
  CCNET_GRID_STRIDE_LOOP(i, n) { cross_softmax_backward<acc_t>(i, attention, grad, g); }
}

template <typename scalar_t, typename acc_t>
__global__ void cross_aggregate_kernel(int64_t n, const acc_t* weights, const scalar_t* x, scalar_t* out,
                                       CrossGeometry g) {
  CCNET_GRID_STRIDE_LOOP(i, n) { out[i] = static_cast<scalar_t>(cross_aggregate<scalar_t, acc_t>(i, weights, x, g)); }
}

template <typename scalar_t, typename acc_t>
__global__ void cross_aggregate_transposed_kernel(int64_t n, const acc_t* weights, const scalar_t* x, scalar_t* out,
                                                  CrossGeometry g) {
  CCNET_GRID_STRIDE_LOOP(i, n) {
    out[i] = static_cast<scalar_t>(cross_aggregate_transposed<scalar_t, acc_t>(i, weights, x, g));
  }
}

// Launches `kernel` over n elements on the current stream (nothing to do for n == 0).
template <typename Kernel, typename... Args>
void launch(Kernel kernel, int64_t n, Args... args) {
  if (n == 0) return;
  kernel<<<blocks_for(n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(n, args...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void check_cuda(const char* where, std::initializer_list<at::Tensor> tensors) {
  for (const auto& t : tensors) {
    TORCH_CHECK(t.is_cuda(), where, ": expected CUDA tensors, got one on ", t.device());
  }
}

}  // namespace

at::Tensor attention_weights_cuda(const at::Tensor& query, const at::Tensor& key) {
  check_inputs("criss_cross_attention_weights (CUDA)", query, key, key);
  check_cuda("criss_cross_attention_weights (CUDA)", {query, key});
  const c10::cuda::CUDAGuard guard(query.device());
  const auto q = query.contiguous(), k = key.contiguous();
  auto attention = new_attention(q);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "criss_cross_attention_weights_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const CrossGeometry g = geometry_of(q);
    acc_t* ap = attention.data_ptr<acc_t>();
    launch(cross_dot_kernel<scalar_t, acc_t>, attention.numel(), q.data_ptr<scalar_t>(), k.data_ptr<scalar_t>(),
           ap, g);
    launch(cross_softmax_kernel<acc_t>, g.batch * g.plane(), ap, g);
  });
  return attention;
}

at::Tensor forward_cuda(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value) {
  check_inputs("criss_cross_attention (CUDA)", query, key, value);
  check_cuda("criss_cross_attention (CUDA)", {query, key, value});
  const c10::cuda::CUDAGuard guard(query.device());
  const auto attention = attention_weights_cuda(query, key);
  const auto v = value.contiguous();
  auto output = at::empty_like(v, at::MemoryFormat::Contiguous);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, v.scalar_type(), "criss_cross_attention_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    launch(cross_aggregate_kernel<scalar_t, acc_t>, output.numel(), attention.data_ptr<acc_t>(),
           v.data_ptr<scalar_t>(), output.data_ptr<scalar_t>(), geometry_of(v));
  });
  return output;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cuda(const at::Tensor& grad_output, const at::Tensor& query,
                                                             const at::Tensor& key, const at::Tensor& value) {
  check_inputs("criss_cross_attention_backward (CUDA)", query, key, value);
  check_cuda("criss_cross_attention_backward (CUDA)", {grad_output, query, key, value});
  check_grad_output("criss_cross_attention_backward (CUDA)", grad_output, value);
  const c10::cuda::CUDAGuard guard(query.device());
  const auto q = query.contiguous(), k = key.contiguous(), v = value.contiguous(), go = grad_output.contiguous();
  const auto attention = attention_weights_cuda(q, k);
  auto grad_energy = at::empty_like(attention);
  auto grad_query = at::empty_like(q), grad_key = at::empty_like(k), grad_value = at::empty_like(v);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, v.scalar_type(), "criss_cross_attention_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const CrossGeometry gv = geometry_of(v), gq = geometry_of(q);
    const acc_t* ap = attention.data_ptr<acc_t>();
    acc_t* ep = grad_energy.data_ptr<acc_t>();
    const scalar_t *qp = q.data_ptr<scalar_t>(), *kp = k.data_ptr<scalar_t>(), *vp = v.data_ptr<scalar_t>(),
                   *gp = go.data_ptr<scalar_t>();
    launch(cross_dot_kernel<scalar_t, acc_t>, grad_energy.numel(), gp, vp, ep, gv);
    launch(cross_softmax_backward_kernel<acc_t>, gv.batch * gv.plane(), ap, ep, gv);
    launch(cross_aggregate_transposed_kernel<scalar_t, acc_t>, grad_value.numel(), ap, gp,
           grad_value.data_ptr<scalar_t>(), gv);
    launch(cross_aggregate_kernel<scalar_t, acc_t>, grad_query.numel(), static_cast<const acc_t*>(ep), kp,
           grad_query.data_ptr<scalar_t>(), gq);
    launch(cross_aggregate_transposed_kernel<scalar_t, acc_t>, grad_key.numel(), static_cast<const acc_t*>(ep), qp,
           grad_key.data_ptr<scalar_t>(), gq);
  });
  return {grad_query, grad_key, grad_value};
}

}  // namespace ccnet_d2
