"""tools/benchmark_inference.py's measurement on the toy models (seconds), its memory probe and tables."""
import time

import numpy as np
import pytest

from ccnet_d2.export import benchmark
from tests.common import CONFIG_ROOT, load_tool


def test_rss_probe_sees_an_allocation():
    with benchmark._RssPeak() as memory:
        block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched
        time.sleep(0.05)  # held long enough for the 2 ms sampler to run (numpy's fill may hold the GIL)
        del block
    assert memory.extra_mib >= 150
    with benchmark._RssPeak() as idle:  # negative control
        pass
    assert idle.extra_mib < 50


def test_runtimes_are_timed_in_turns(monkeypatch):
    calls, clock = [], [0.0]
    durations = {"a": [1.0, 9.0, 2.0], "b": [5.0, 4.0, 30.0]}  # seconds each call "takes"

    def runner(name):
        def run():
            calls.append(name)
            clock[0] += durations[name][calls.count(name) - 1]
        return run

    monkeypatch.setattr(benchmark.time, "perf_counter", lambda: clock[0])
    medians = benchmark._interleaved_medians([runner("a"), runner("b")], "cpu", iters=3)
    assert calls == ["a", "b", "a", "b", "a", "b"]
    assert medians == [2.0, 5.0]


def test_benchmark_rows_on_the_toy_models(monkeypatch):
    monkeypatch.setitem(benchmark.BENCHMARK_MODELS, "toy", (
        "Toy-InstanceSegmentation/mask_rcnn_rcca_R_50_w16_FPN_toy.yaml", ((96, 128),), ()))
    monkeypatch.setitem(benchmark.BENCHMARK_MODELS, "toy semantic", (
        "Toy-SemanticSegmentation/ccnet_R_50_narrow_os8_r2_toy.yaml", ((64, 80),), ()))
    rows = benchmark.run_benchmark(CONFIG_ROOT, ["toy", "toy semantic"], ["eager", "onnxruntime", "onnxruntime int8"],
                                   ["cpu"], warmup=1, iters=2, threads=1, profile=True, log=lambda line: None)
    benchmark.compare_with_gemm(rows, {"cpu": 50.0})
    assert [(r["model"], r["runtime"]) for r in rows] == [
        ("toy", "eager"), ("toy", "onnxruntime"), ("toy", "onnxruntime int8"),
        ("toy semantic", "eager"), ("toy semantic", "onnxruntime"), ("toy semantic", "onnxruntime int8")]
    for row in rows:
        assert row["latency_s"] > 0 and row["memory_mib"] >= 0, row
        assert row["gflop_per_s"] == pytest.approx(row["gflops"] / row["latency_s"])
        assert row["of_gemm"] == pytest.approx(row["gflop_per_s"] / 50.0)
    assert rows[0]["gflops"] == rows[2]["gflops"] > 0 and rows[3]["gflops"] == rows[5]["gflops"] > 0
    assert rows[1]["note"].startswith("export ") and "quantization" in rows[2]["note"] + rows[5]["note"]
    # the profiled rows: ONNX Runtime's, their operator times within one run's total
    assert [("operators" in r) for r in rows] == [False, True, True, False, True, True]
    for row in rows[1:3] + rows[4:]:
        names = [op for op, _ in row["operators"]]
        assert "Conv" in names or "QLinearConv" in names, names
        assert 0 < sum(ms for _, ms in row["operators"]) <= row["operators_total_ms"] < 1e3 * row["latency_s"] * 3
    assert benchmark.format_profiles(rows).count("\n") == 3
    table = benchmark.format_table(rows + [{"model": "toy", "input": "1x1", "device": "cpu", "runtime": "eager",
                                            "gflops": 1.0, "note": "failed: ValueError: why"}])
    assert table.count("\n") == 8 and "| 1 | - | - | - | failed: ValueError: why |" in table


def test_throughput_rows_read_a_folder(monkeypatch):
    monkeypatch.setitem(benchmark.BENCHMARK_MODELS, "toy", (
        "Toy-InstanceSegmentation/mask_rcnn_rcca_R_50_w16_FPN_toy.yaml", ((96, 128),), ()))
    calls = []
    original = benchmark.read_images_ahead
    monkeypatch.setattr(benchmark, "read_images_ahead", lambda paths: calls.append(len(paths)) or original(paths))
    rows = benchmark.run_throughput(CONFIG_ROOT, ["toy"], ["eager", "torch.compile", "onnxruntime"], ["cpu"],
                                    images=3, threads=1, log=lambda line: None)
    assert [r["runtime"] for r in rows] == ["eager", "onnxruntime"]  # torch.compile has no throughput row
    assert all(r["images_per_s"] > 0 and r["images"] == 3 for r in rows), rows
    assert calls == [1, 3, 1, 3]  # one warm-up image, then the folder, per runtime
    assert "| toy | 96x128 | cpu | eager | 3 |" in benchmark.format_throughput_table(rows)


def test_tool_refuses_bad_counts():
    tool = load_tool("benchmark_inference")
    with pytest.raises(SystemExit):
        tool.parse_args(["--iters", "0"])
