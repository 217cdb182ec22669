"""Inference latency and peak memory of the deployable models per runtime: PyTorch eager,
torch.compile and ONNX Runtime, on CPU and, when present, on a GPU (tools/benchmark_inference.py).

Every runtime runs the same function: the exported one (``SemanticSegmentationGraph``, Mask R-CNN's
``TracingAdapter`` with raw detections), batch 1, random weights with the attention on and
batch-norm statistics measured on a random image (``random_weights``). Latency is the median of the timed
runs after the warm-up runs (torch.compile compiles in the first warm-up run). Peak memory is the
largest increase during the timed runs: of the process's resident memory on CPU (sampled every 2 ms),
of ``torch.cuda.max_memory_allocated`` on a GPU.
"""
import datetime
import os
import platform
import statistics
import tempfile
import threading
import time
from typing import Callable, Dict, List, Sequence, Tuple

import torch

import detectron2
from detectron2.config import get_cfg
from detectron2.modeling import GeneralizedRCNN, build_model

from ..config import add_ccnet_config
from .exporter import export_model
from .instance import instance_tracing_adapter
from .random_weights import calibrate_batch_norm, set_attention_gamma
from .semantic import SemanticSegmentationGraph

__all__ = ["BENCHMARK_MODELS", "RUNTIMES", "run_benchmark", "environment_lines", "format_table"]

# name: (config relative to configs/, input sizes (h, w), config overrides)
BENCHMARK_MODELS: Dict[str, Tuple[str, Sequence[Tuple[int, int]], Sequence[str]]] = {
    "CCNet R-50": ("Cityscapes-SemanticSegmentation/ccnet_R_50_os8_r2_769x769_60k_bs8_cityscapes.yaml",
                   ((512, 1024), (769, 769)), ("TEST.SEM_SEG.MODE", "whole")),
    "CCNet R-101": ("Cityscapes-SemanticSegmentation/ccnet_R_101_os8_r2_769x769_60k_bs8_cityscapes.yaml",
                    ((512, 1024), (769, 769)), ("TEST.SEM_SEG.MODE", "whole")),
    # score threshold 0: always DETECTIONS_PER_IMAGE (100) boxes through the mask head, as on a busy image
    "Mask R-CNN + RCCA R-50": ("COCO-InstanceSegmentation/mask_rcnn_rcca_R_50_FPN_1x_coco.yaml",
                               ((800, 1333),), ("MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0")),
}
RUNTIMES = ("eager", "torch.compile", "onnxruntime")


class _RssPeak:
    """Largest resident-set increase of this process while active (Linux /proc)."""

    def __enter__(self):
        self._page = os.sysconf("SC_PAGE_SIZE")
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _sample(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def extra_mib(self) -> float:
        return (self.peak - self.base) / 2**20


def _measure(run: Callable[[], object], device: str, warmup: int, iters: int) -> Tuple[float, float]:
    """(median seconds, peak extra MiB) of ``iters`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        run()
    times = []
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(iters):
            start = time.perf_counter()
            run()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return statistics.median(times), (torch.cuda.max_memory_allocated() - base) / 2**20
    with _RssPeak() as memory:
        for _ in range(iters):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return statistics.median(times), memory.extra_mib


def _onnxruntime_session(path: str, device: str, threads: int):
    import onnxruntime

    if device == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise RuntimeError("this onnxruntime has no CUDA provider (onnxruntime-gpu)")
        providers = ["CUDAExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(path, options, providers=providers)


def _runner(model, image: torch.Tensor, runtime: str, device: str, threads: int, workdir: str):
    """(a no-argument function running one inference, a note) for one runtime."""
    is_instance = isinstance(model, GeneralizedRCNN)
    graph_input = image if is_instance else image[None]
    if runtime == "onnxruntime":
        start = time.perf_counter()
        path = export_model(model, image, workdir, "onnx")
        note = f"export {time.perf_counter() - start:.0f} s"
        session = _onnxruntime_session(path, device, threads)
        feed = {session.get_inputs()[0].name: graph_input.cpu().numpy()}
        return lambda: session.run(None, feed), note
    graph = instance_tracing_adapter(model, image) if is_instance else SemanticSegmentationGraph(model)
    if runtime == "torch.compile":
        graph = torch.compile(graph)

    def run():
        with torch.no_grad():
            return graph(graph_input)

    if runtime == "torch.compile":
        start = time.perf_counter()
        run()
        return run, f"compile {time.perf_counter() - start:.0f} s"
    return run, ""


def _build(config_root: str, config: str, overrides: Sequence[str], device: str):
    cfg = add_ccnet_config(get_cfg())
    cfg.merge_from_file(os.path.join(config_root, config))
    cfg.merge_from_list(["MODEL.WEIGHTS", "", "MODEL.DEVICE", device, *overrides])
    torch.manual_seed(0)
    model = set_attention_gamma(build_model(cfg), 1.0)
    image = torch.rand(3, 256, 320, generator=torch.Generator().manual_seed(1)).mul(255).to(device)
    return calibrate_batch_norm(model, image)


def run_benchmark(config_root: str, models: Sequence[str], runtimes: Sequence[str], devices: Sequence[str],
                  warmup: int, iters: int, threads: int, log=print) -> List[dict]:
    """One row per (model, size, device, runtime); a runtime that fails is a row saying why."""
    rows = []
    for name in models:
        config, sizes, overrides = BENCHMARK_MODELS[name]
        for device in devices:
            model = _build(config_root, config, overrides, device)
            for height, width in sizes:
                image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(0)).mul(255).to(device)
                for runtime in runtimes:
                    row = {"model": name, "input": f"{height}x{width}", "device": device, "runtime": runtime}
                    with tempfile.TemporaryDirectory() as workdir:
                        try:
                            run, note = _runner(model, image, runtime, device, threads, workdir)
                            row["latency_s"], row["memory_mib"] = _measure(run, device, warmup, iters)
                            row["note"] = note
                        except Exception as e:  # the table says why instead of stopping the other rows
                            row["note"] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
                    log(format_table([row], header=False))
                    rows.append(row)
                    torch._dynamo.reset()
    return rows


def format_table(rows: List[dict], header: bool = True) -> str:
    lines = ["| model | input | device | runtime | median latency (s) | peak extra memory (MiB) | note |",
             "|---|---|---|---|---|---|---|"] if header else []
    for r in rows:
        latency = f"{r['latency_s']:.2f}" if "latency_s" in r else "-"
        memory = f"{r['memory_mib']:.0f}" if "memory_mib" in r else "-"
        lines.append(f"| {r['model']} | {r['input']} | {r['device']} | {r['runtime']} | {latency} | {memory} "
                     f"| {r.get('note', '')} |")
    return "\n".join(lines)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def environment_lines(threads: int, warmup: int, iters: int) -> List[str]:
    """What the numbers depend on: date, machine, load, threads, versions."""
    import onnxruntime

    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return [
        f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"CPU: {_cpu_name()}, {os.cpu_count()} logical cores; GPU: {gpu}",
        f"threads: {threads} (torch and ONNX Runtime intra-op); load average (1, 5, 15 min) before the runs: {load}",
        f"runs: median of {iters} after {warmup} warm-up",
        f"versions: Python {platform.python_version()}, torch {torch.__version__}, "
        f"detectron2 {detectron2.__version__}, onnxruntime {onnxruntime.__version__}",
    ]

