"""The benchmark's arithmetic: FLOP counts against hand counts from the layers' definitions, and the GEMM
rate measurement."""
import pytest
import torch
from torch import nn

from ccnet_d2.export.arithmetic_rate import count_gflops, gemm_rate
from ccnet_d2.layers import CrissCrossAttention


def test_convolution_and_linear_counts_are_two_flops_per_multiply_accumulate():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1, stride=2), nn.BatchNorm2d(4),
                          nn.Flatten(), nn.Linear(4 * 5 * 6, 7))
    macs = 10 * 12 * 8 * 3 * 9 + 5 * 6 * 4 * 8 + 4 * 5 * 6 * 7  # the norm and the activation are not counted
    assert count_gflops(model, (torch.rand(1, 3, 10, 12),)) == pytest.approx(2 * macs / 1e9, rel=1e-9)


def test_criss_cross_attention_counts_its_projections_energies_and_aggregation():
    channels, height, width, batch = 16, 9, 13, 2
    module = CrissCrossAttention(channels, reduction=4, backend="torch").eval()
    qk = channels // 4
    pixels = batch * height * width
    projections = pixels * channels * (2 * qk + channels)   # the query, key and value 1x1 convolutions
    energies = pixels * (height + width) * qk              # every pixel against its row and its column
    aggregation = pixels * (height + width) * channels     # the weighted sum of the values on both lines
    expected = 2 * (projections + energies + aggregation) / 1e9
    assert count_gflops(module, (torch.rand(batch, channels, height, width),)) == pytest.approx(expected, rel=1e-9)


def test_gemm_rate_reports_each_runtime():
    rates = gemm_rate("cpu", threads=1, sizes=(128, 256), repeats=3)
    assert set(rates) == {"torch 128", "onnxruntime 128", "torch 256", "onnxruntime 256"}
    # 2 * n**3 flop per run: a rate outside this range would mean a wrong count or a wrong clock
    assert all(0.1 < rate < 1e5 for rate in rates.values()), rates
