// Bindings of ccnet_d2._C: the torch.library operators (CPU always, CUDA when built with a toolkit)
// and a few build facts for the Python side. Autograd and the fake (meta) kernels are registered in
// Python (ccnet_d2/layers/compiled_op.py) on top of these definitions.
#include <torch/extension.h>
#include <torch/library.h>

#include "criss_cross/criss_cross.h"

#ifdef CCNET_WITH_CUDA
#include <cuda.h>  // CUDA_VERSION
#endif

namespace ccnet_d2 {

bool compiled_with_cuda() {
#ifdef CCNET_WITH_CUDA
  return true;
#else
  return false;
#endif
}

std::string cuda_version() {
#ifdef CCNET_WITH_CUDA
  return std::to_string(CUDA_VERSION / 1000) + "." + std::to_string((CUDA_VERSION % 1000) / 10);
#else
  return "";
#endif
}

}  // namespace ccnet_d2

TORCH_LIBRARY(ccnet_d2, m) {
  m.def("criss_cross_attention(Tensor query, Tensor key, Tensor value) -> Tensor");
  m.def("criss_cross_attention_backward(Tensor grad_output, Tensor query, Tensor key, Tensor value)"
        " -> (Tensor, Tensor, Tensor)");
  m.def("criss_cross_attention_weights(Tensor query, Tensor key) -> Tensor");
}

TORCH_LIBRARY_IMPL(ccnet_d2, CPU, m) {
  m.impl("criss_cross_attention", &ccnet_d2::forward_cpu);
  m.impl("criss_cross_attention_backward", &ccnet_d2::backward_cpu);
  m.impl("criss_cross_attention_weights", &ccnet_d2::attention_weights_cpu);
}

#ifdef CCNET_WITH_CUDA
TORCH_LIBRARY_IMPL(ccnet_d2, CUDA, m) {
  m.impl("criss_cross_attention", &ccnet_d2::forward_cuda);
  m.impl("criss_cross_attention_backward", &ccnet_d2::backward_cuda);
  m.impl("criss_cross_attention_weights", &ccnet_d2::attention_weights_cuda);
}
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("compiled_with_cuda", &ccnet_d2::compiled_with_cuda, "True when the CUDA kernels were compiled in");
  m.def("cuda_version", &ccnet_d2::cuda_version, "CUDA toolkit version the kernels were compiled with ('' if none)");
}
