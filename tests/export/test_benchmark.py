"""tools/benchmark_inference.py's measurement on the toy Mask R-CNN (seconds), its memory probe and table."""
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


def test_benchmark_rows_on_the_toy_model(monkeypatch, capsys):
    monkeypatch.setitem(benchmark.BENCHMARK_MODELS, "toy", (
        "Toy-InstanceSegmentation/mask_rcnn_rcca_R_50_w16_FPN_toy.yaml", ((96, 128),), ()))
    rows = benchmark.run_benchmark(CONFIG_ROOT, ["toy"], ["eager", "onnxruntime"], ["cpu"], warmup=1, iters=2,
                                   threads=1, log=lambda line: None)
    assert [(r["runtime"], r["input"]) for r in rows] == [("eager", "96x128"), ("onnxruntime", "96x128")]
    for row in rows:
        assert row["latency_s"] > 0 and row["memory_mib"] >= 0, row
    assert rows[1]["note"].startswith("export ")
    table = benchmark.format_table(rows + [{"model": "toy", "input": "1x1", "device": "cpu", "runtime": "eager",
                                            "note": "failed: ValueError: why"}])
    assert table.count("\n") == 4 and "| - | - | failed: ValueError: why |" in table


def test_tool_refuses_bad_counts():
    tool = load_tool("benchmark_inference")
    with pytest.raises(SystemExit):
        tool.parse_args(["--iters", "0"])
