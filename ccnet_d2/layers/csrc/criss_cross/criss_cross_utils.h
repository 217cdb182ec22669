// Criss-cross attention: the per-element arithmetic shared by the CPU and the CUDA kernels.
//
// Every output element is computed by exactly one call of one function below, in "gather" form
// (the backward included), so both devices are deterministic and need no atomics. The CPU file runs
// these functions under at::parallel_for, the CUDA file in grid-stride kernels: only the thread
// mapping differs, so the CPU tests of the compiled op check the arithmetic the GPU runs.
//
// Layouts (all contiguous NCHW): query/key [B, C', H, W], value/output [B, C, H, W], attention
// [B, L, H, W] with L = H + W - 1 in the accumulation type (float, or double for double inputs).
// Cross position j of pixel (h, w): j < W is the row pixel (h, j), the pixel itself included;
// j = W + i is the i-th pixel of the column with the pixel itself left out (row i if i < h, else
// row i + 1). This is the layout of the original CCNet op and of criss_cross_attention_map.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define CCNET_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define CCNET_HOST_DEVICE inline
#endif

namespace ccnet_d2 {

// Sizes of one problem; C is the channel count of the tensors the function reads.
struct CrossGeometry {
  int64_t batch, channels, height, width;
  CCNET_HOST_DEVICE int64_t cross() const { return height + width - 1; }
  CCNET_HOST_DEVICE int64_t plane() const { return height * width; }
};

CCNET_HOST_DEVICE float exp_acc(float x) { return ::expf(x); }
CCNET_HOST_DEVICE double exp_acc(double x) { return ::exp(x); }

// Row of the pixel at cross position j >= W of a pixel in row h (the column skips row h).
CCNET_HOST_DEVICE int64_t column_source_row(int64_t j, int64_t h, int64_t width) {
  const int64_t i = j - width;
  return i < h ? i : i + 1;
}

// Offset, inside one [H, W] plane, of the pixel at cross position j of pixel (h, w).
CCNET_HOST_DEVICE int64_t cross_source_offset(int64_t j, int64_t h, int64_t w, int64_t width) {
  return j < width ? h * width + j : column_source_row(j, h, width) * width + w;
}

// out[b, j, h, w] = sum_c a[b, c, h, w] * x[b, c, cross_j(h, w)] for element `index` of [B, L, H, W].
// Energies (a = query, x = key) and the attention gradient (a = grad_output, x = value).
template <typename scalar_t, typename acc_t>
CCNET_HOST_DEVICE acc_t cross_dot(int64_t index, const scalar_t* a, const scalar_t* x, CrossGeometry g) {
  const int64_t plane = g.plane(), cross = g.cross();
  const int64_t pixel = index % plane;
  const int64_t j = (index / plane) % cross;
  const int64_t b = index / (plane * cross);
  const int64_t h = pixel / g.width, w = pixel % g.width;
  const int64_t source = cross_source_offset(j, h, w, g.width);
  const scalar_t* a_ptr = a + b * g.channels * plane + pixel;
  const scalar_t* x_ptr = x + b * g.channels * plane + source;
  acc_t sum = 0;
  for (int64_t c = 0; c < g.channels; ++c) {
    sum += static_cast<acc_t>(a_ptr[c * plane]) * static_cast<acc_t>(x_ptr[c * plane]);
  }
  return sum;
}

// In place over the L energies of pixel `index` of [B, H, W]: one softmax over row and column.
template <typename acc_t>
CCNET_HOST_DEVICE void cross_softmax(int64_t index, acc_t* attention, CrossGeometry g) {
  const int64_t plane = g.plane(), cross = g.cross();
  acc_t* p = attention + (index / plane) * cross * plane + index % plane;
  acc_t peak = p[0];
  for (int64_t j = 1; j < cross; ++j) peak = p[j * plane] > peak ? p[j * plane] : peak;
  acc_t total = 0;
  for (int64_t j = 0; j < cross; ++j) {
    const acc_t e = exp_acc(p[j * plane] - peak);
    p[j * plane] = e;
    total += e;
  }
  const acc_t inverse = acc_t(1) / total;
  for (int64_t j = 0; j < cross; ++j) p[j * plane] *= inverse;
}

// In place for pixel `index` of [B, H, W]: turns the attention gradient dA into the energy gradient
// dE_j = A_j * (dA_j - sum_k A_k dA_k) (the softmax backward).
template <typename acc_t>
CCNET_HOST_DEVICE void cross_softmax_backward(int64_t index, const acc_t* attention, acc_t* grad,
                                              CrossGeometry g) {
  const int64_t plane = g.plane(), cross = g.cross();
  const int64_t base = (index / plane) * cross * plane + index % plane;
  const acc_t* a = attention + base;
  acc_t* d = grad + base;
  acc_t dot = 0;
  for (int64_t j = 0; j < cross; ++j) dot += a[j * plane] * d[j * plane];
  for (int64_t j = 0; j < cross; ++j) d[j * plane] = a[j * plane] * (d[j * plane] - dot);
}

// out[b, c, h, w] = sum_j weights[b, j, h, w] * x[b, c, cross_j(h, w)] for element `index` of
// [B, C, H, W]. The output (weights = attention, x = value) and the query gradient (weights =
// energy gradient, x = key).
template <typename scalar_t, typename acc_t>
CCNET_HOST_DEVICE acc_t cross_aggregate(int64_t index, const acc_t* weights, const scalar_t* x,
                                        CrossGeometry g) {
  const int64_t plane = g.plane(), cross = g.cross();
  const int64_t pixel = index % plane;
  const int64_t b = index / (g.channels * plane);
  const int64_t h = pixel / g.width, w = pixel % g.width;
  const acc_t* wt = weights + b * cross * plane + pixel;
  const scalar_t* x_plane = x + (index - pixel);  // x[b, c, :, :]
  acc_t sum = 0;
  for (int64_t j = 0; j < g.width; ++j) {
    sum += wt[j * plane] * static_cast<acc_t>(x_plane[h * g.width + j]);
  }
  for (int64_t j = g.width; j < cross; ++j) {
    sum += wt[j * plane] * static_cast<acc_t>(x_plane[column_source_row(j, h, g.width) * g.width + w]);
  }
  return sum;
}

// The transpose of cross_aggregate: out[b, c, y, x] = sum over the pixels u whose cross holds (y, x)
// of weights[b, j_u(y, x), u] * x[b, c, u], for element `index` of [B, C, H, W]. Those pixels are
// the W pixels (y, w') of row y, which see (y, x) at row entry j = x, and the H-1 pixels (h', x),
// h' != y, of column x, which see it at column entry j = W + (y < h' ? y : y - 1). The value
// gradient (weights = attention, x = grad_output) and the key gradient (weights = energy
// gradient, x = query).
template <typename scalar_t, typename acc_t>
CCNET_HOST_DEVICE acc_t cross_aggregate_transposed(int64_t index, const acc_t* weights, const scalar_t* x,
                                                   CrossGeometry g) {
  const int64_t plane = g.plane(), cross = g.cross();
  const int64_t pixel = index % plane;
  const int64_t b = index / (g.channels * plane);
  const int64_t y = pixel / g.width, xc = pixel % g.width;
  const acc_t* wt = weights + b * cross * plane;
  const scalar_t* x_plane = x + (index - pixel);
  acc_t sum = 0;
  for (int64_t w = 0; w < g.width; ++w) {
    const int64_t u = y * g.width + w;
    sum += wt[xc * plane + u] * static_cast<acc_t>(x_plane[u]);
  }
  for (int64_t h = 0; h < g.height; ++h) {
    if (h == y) continue;
    const int64_t u = h * g.width + xc;
    const int64_t j = g.width + (y < h ? y : y - 1);
    sum += wt[j * plane + u] * static_cast<acc_t>(x_plane[u]);
  }
  return sum;
}

}  // namespace ccnet_d2
