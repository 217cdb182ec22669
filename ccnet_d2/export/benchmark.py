"""Inference latency, arithmetic rate and peak memory of the deployable models per runtime: PyTorch eager,
torch.compile, ONNX Runtime and ONNX Runtime on the INT8 model, on CPU and, when present, on a GPU; and
the throughput over a folder of images (tools/benchmark_inference.py).

Every runtime runs the same function: the exported one (``SemanticSegmentationGraph``, Mask R-CNN's
``TracingAdapter`` with raw detections), batch 1, random weights with the attention on and
batch-norm statistics measured on a random image (``random_weights``). Latency is the median of the timed
runs after the warm-up runs (torch.compile compiles in the first warm-up run); the runtimes of one model and
size are timed in turns, so that the machine's slow phases fall on all of them alike. GFLOPs are counted once per
model and input (``arithmetic_rate.count_gflops``); a row's GFLOP/s is that count over its latency and its
share is of the GEMM rate measured in the same run (``arithmetic_rate.gemm_rate``). Peak memory is the
largest increase during the warm-up runs (the first inference of a built model or a new session allocates
its working memory): of the process's resident memory on CPU (sampled every 2 ms, during the warm-up only,
so that the sampler does not slow the timed runs), of ``torch.cuda.max_memory_allocated`` on a GPU. The INT8 rows of the random-weight models
are calibrated on random images (the speed does not depend on the ranges); the accuracy of INT8 is
measured on a trained model (``int8_accuracy_row``).

Throughput rows: a folder of JPEG files of the row's size, read ahead in a background thread
(``read_images_ahead``) while the model runs, each image through the predictor's steps (``preprocess``, the
graph, ``semantic_postprocess`` / ``instance_postprocess``); images per second over the folder after one
warm-up image.
"""
import datetime
import functools
import os
import platform
import statistics
import tempfile
import threading
import time
from typing import Callable, Dict, List, Sequence, Tuple

import cv2
import numpy as np
import torch

import detectron2
from detectron2.config import get_cfg
from detectron2.modeling import GeneralizedRCNN, build_model

from ..config import add_ccnet_config
from ..data.image_files import read_images_ahead
from .arithmetic_rate import count_gflops, gemm_rate
from .exporter import export_model
from .instance import instance_tracing_adapter
from .preprocessing import instance_postprocess, preprocess, semantic_postprocess
from .quantization import INT8_FILE_NAME, quantize_int8
from .random_weights import calibrate_batch_norm, set_attention_gamma
from .semantic import SemanticSegmentationGraph

__all__ = ["BENCHMARK_MODELS", "RUNTIMES", "THROUGHPUT_RUNTIMES", "run_benchmark", "compare_with_gemm", "run_throughput",
           "int8_accuracy_row", "environment_lines", "gemm_lines", "format_table", "format_throughput_table",
           "format_int8_accuracy", "format_profiles"]

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
RUNTIMES = ("eager", "torch.compile", "onnxruntime", "onnxruntime int8")
THROUGHPUT_RUNTIMES = ("eager", "onnxruntime")
_INT8_CALIBRATION_IMAGES = 4


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


def _synchronize(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def _warm_up(run: Callable[[], object], device: str, warmup: int) -> float:
    """Runs ``run`` ``warmup`` times; the peak extra MiB meanwhile. The memory is sampled during the warm-up
    runs only: a sampling thread waking every 2 ms during the timed runs cost the 2-thread runtimes of this
    project's 2-core machine up to 20 % (Mask R-CNN in ONNX Runtime: 4.18 s sampled, 3.37 s not)."""
    if device == "cuda":
        _synchronize(device)
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(warmup):
            run()
        _synchronize(device)
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    with _RssPeak() as memory:
        for _ in range(warmup):
            run()
    return memory.extra_mib


def _interleaved_medians(runs: Sequence[Callable[[], object]], device: str, iters: int) -> List[float]:
    """Median seconds of ``iters`` timed runs of each function, taken in turns (first, second, ..., first,
    ...), so that a slow phase of the machine falls on every runtime of a row group alike and not on one
    runtime's whole series."""
    times = [[] for _ in runs]
    for _ in range(iters):
        for run, series in zip(runs, times):
            start = time.perf_counter()
            run()
            _synchronize(device)
            series.append(time.perf_counter() - start)
    return [statistics.median(series) for series in times]


def _onnxruntime_session(path: str, device: str, threads: int, profile_prefix: str = None):
    import onnxruntime

    if device == "cuda":
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise RuntimeError("this onnxruntime has no CUDA provider (onnxruntime-gpu)")
        providers = ["CUDAExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    if profile_prefix:
        options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    return onnxruntime.InferenceSession(path, options, providers=providers)


def _operator_times(path: str, graph_input: torch.Tensor, device: str, threads: int, top: int = 6):
    """([(operator type, milliseconds)] largest first, total milliseconds) of the second of two runs of the
    ONNX file ``path``, from ONNX Runtime's profiler: its per-node kernel times summed per operator type
    (an If's time includes its branch's)."""
    import json

    session = _onnxruntime_session(path, device, threads, profile_prefix=os.path.join(os.path.dirname(path), "profile"))
    feed = {session.get_inputs()[0].name: graph_input.cpu().numpy()}
    for _ in range(2):
        session.run(None, feed)
    with open(session.end_profiling()) as f:
        events = json.load(f)
    last_run = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"][-1]
    by_type = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= last_run["ts"]:
            by_type[e["args"]["op_name"]] = by_type.get(e["args"]["op_name"], 0) + e["dur"] / 1000
    return sorted(by_type.items(), key=lambda item: -item[1])[:top], sum(by_type.values())


def _int8_file(path: str, graph_input: torch.Tensor) -> str:
    """The INT8 version of the ONNX file ``path``, calibrated on ``graph_input`` and a few random images."""
    generator = torch.Generator().manual_seed(2)
    inputs = [graph_input.cpu()] + [torch.rand(graph_input.shape, generator=generator) * 255
                                    for _ in range(_INT8_CALIBRATION_IMAGES - 1)]
    return quantize_int8(path, [x.numpy() for x in inputs], os.path.join(os.path.dirname(path), INT8_FILE_NAME))


def _runner(model, image: torch.Tensor, runtime: str, device: str, threads: int, workdir: str):
    """(a function running one inference of a graph input, a note, the ONNX file or None) for one runtime."""
    is_instance = isinstance(model, GeneralizedRCNN)
    if runtime.startswith("onnxruntime"):
        start = time.perf_counter()
        path = export_model(model, image, workdir, "onnx")
        note = f"export {time.perf_counter() - start:.0f} s"
        if runtime == "onnxruntime int8":
            start = time.perf_counter()
            path = _int8_file(path, _graph_input(model, image))
            note += f", quantization {time.perf_counter() - start:.0f} s"
        session = _onnxruntime_session(path, device, threads)
        name = session.get_inputs()[0].name
        return lambda graph_input: session.run(None, {name: graph_input.cpu().numpy()}), note, path
    graph = instance_tracing_adapter(model, image) if is_instance else SemanticSegmentationGraph(model)
    if runtime == "torch.compile":
        graph = torch.compile(graph)

    def run(graph_input):
        with torch.no_grad():
            return [o.cpu().numpy() for o in graph(graph_input)]

    if runtime == "torch.compile":
        start = time.perf_counter()
        run(_graph_input(model, image))
        return run, f"compile {time.perf_counter() - start:.0f} s", None
    return run, "", None


def _graph_input(model, image: torch.Tensor) -> torch.Tensor:
    return image if isinstance(model, GeneralizedRCNN) else image[None]


def _gflops(model, image: torch.Tensor) -> float:
    graph = instance_tracing_adapter(model, image) if isinstance(model, GeneralizedRCNN) \
        else SemanticSegmentationGraph(model)
    return count_gflops(graph, (_graph_input(model, image),))


def _build(config_root: str, config: str, overrides: Sequence[str], device: str):
    cfg = add_ccnet_config(get_cfg())
    cfg.merge_from_file(os.path.join(config_root, config))
    cfg.merge_from_list(["MODEL.WEIGHTS", "", "MODEL.DEVICE", device, *overrides])
    torch.manual_seed(0)
    model = set_attention_gamma(build_model(cfg), 1.0)
    image = torch.rand(3, 256, 320, generator=torch.Generator().manual_seed(1)).mul(255).to(device)
    return cfg, calibrate_batch_norm(model, image)


def _row_image(height: int, width: int, device: str) -> torch.Tensor:
    return torch.rand(3, height, width, generator=torch.Generator().manual_seed(0)).mul(255).to(device)


def run_benchmark(config_root: str, models: Sequence[str], runtimes: Sequence[str], devices: Sequence[str],
                  warmup: int, iters: int, threads: int, profile: bool = False, log=print) -> List[dict]:
    """One row per (model, size, device, runtime); a runtime that fails is a row saying why. The runtimes of
    one model and size are prepared and warmed up one after another, then timed in turns
    (``_interleaved_medians``). ``profile``: the ONNX Runtime rows also get their operator times
    (``format_profiles``). The share of the GEMM rate is set by ``compare_with_gemm`` once the rate is
    measured."""
    rows = []
    for name in models:
        config, sizes, overrides = BENCHMARK_MODELS[name]
        for device in devices:
            _, model = _build(config_root, config, overrides, device)
            for height, width in sizes:
                image = _row_image(height, width, device)
                gflops = _gflops(model, image)
                graph_input = _graph_input(model, image)
                group, timed = [], []  # all rows of this model and size; (row, run, ONNX file) of those that run
                with tempfile.TemporaryDirectory() as workdir:
                    for runtime in runtimes:
                        row = {"model": name, "input": f"{height}x{width}", "device": device, "runtime": runtime,
                               "gflops": gflops}
                        group.append(row)
                        try:
                            run, row["note"], path = _runner(model, image, runtime, device, threads,
                                                             os.path.join(workdir, runtime.replace(" ", "_")))
                            run_once = functools.partial(run, graph_input)
                            row["memory_mib"] = _warm_up(run_once, device, warmup)
                            timed.append((row, run_once, path))
                        except Exception as e:  # the table says why instead of stopping the other rows
                            row["note"] = _failure(e)
                    try:
                        medians = _interleaved_medians([run for _, run, _ in timed], device, iters)
                    except Exception as e:
                        for row, _, _ in timed:
                            row["note"] = _failure(e)
                        timed = []
                    for (row, _, path), latency in zip(timed, medians if timed else ()):
                        row["latency_s"], row["gflop_per_s"] = latency, gflops / latency
                        if profile and path:
                            row["operators"], row["operators_total_ms"] = _operator_times(
                                path, graph_input, device, threads)
                for row in group:
                    log(format_table([row], header=False))
                rows.extend(group)
                torch._dynamo.reset()
    return rows


def _failure(error: Exception) -> str:
    return f"failed: {type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}"


def compare_with_gemm(rows: List[dict], gemm_gflops: Dict[str, float]) -> List[dict]:
    """Each timed row's GFLOP/s as a share of its device's GEMM rate (``of_gemm``)."""
    for row in rows:
        if "gflop_per_s" in row:
            row["of_gemm"] = row["gflop_per_s"] / gemm_gflops[row["device"]]
    return rows


def _write_folder(folder: str, height: int, width: int, count: int) -> List[str]:
    """``count`` JPEG files of smooth random colours, ``height`` x ``width``."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        small = rng.integers(0, 256, size=(max(height // 16, 1), max(width // 16, 1), 3), dtype=np.uint8)
        path = os.path.join(folder, f"{i:04d}.jpg")
        cv2.imwrite(path, cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR))
        paths.append(path)
    return paths


def _images_per_second(cfg, run, paths: List[str]) -> float:
    """Predictor-like loop over ``paths`` (read ahead, preprocess, ``run``, postprocess), after one warm-up."""
    is_instance = cfg.MODEL.META_ARCHITECTURE != "CCNetSegmentor"

    def predict(image_bgr):
        inputs = preprocess(image_bgr, cfg)
        outputs = run(torch.from_numpy(inputs if is_instance else inputs[None]))
        if is_instance:
            return instance_postprocess(outputs, image_bgr.shape[:2], cfg)
        return semantic_postprocess(outputs[0], image_bgr.shape[:2], cfg)

    for _, image, _ in read_images_ahead(paths[:1]):
        predict(image)
    start = time.perf_counter()
    for path, image, error in read_images_ahead(paths):
        if error is not None:
            raise RuntimeError(error)
        predict(image)
    return len(paths) / (time.perf_counter() - start)


def run_throughput(config_root: str, models: Sequence[str], runtimes: Sequence[str], devices: Sequence[str],
                   images: int, threads: int, log=print) -> List[dict]:
    """Images per second over a folder of ``images`` files at each model's first size (the test resize set
    to keep that size), per runtime of ``THROUGHPUT_RUNTIMES`` in ``runtimes``."""
    rows = []
    for name in models:
        config, sizes, overrides = BENCHMARK_MODELS[name]
        height, width = sizes[0]
        keep_size = ("INPUT.MIN_SIZE_TEST", str(min(height, width)), "INPUT.MAX_SIZE_TEST", str(max(height, width)))
        for device in devices:
            cfg, model = _build(config_root, config, (*overrides, *keep_size), device)
            for runtime in (r for r in runtimes if r in THROUGHPUT_RUNTIMES):
                row = {"model": name, "input": f"{height}x{width}", "device": device, "runtime": runtime,
                       "images": images}
                with tempfile.TemporaryDirectory() as workdir:
                    try:
                        paths = _write_folder(workdir, height, width, images)
                        run, _, _ = _runner(model, _row_image(height, width, device), runtime, device, threads,
                                            workdir)
                        row["images_per_s"] = _images_per_second(cfg, run, paths)
                    except Exception as e:
                        row["note"] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
                log(format_throughput_table([row], header=False))
                rows.append(row)
    return rows


def int8_accuracy_row(config_file: str, weights: str, calibration_images: int, opts: Sequence[str] = ()) -> dict:
    """A trained model's float and INT8 ONNX files (calibrated on its training set) on its test set
    (``quantization.int8_accuracy``)."""
    from detectron2.checkpoint import DetectionCheckpointer

    from .quantization import calibration_inputs, int8_accuracy

    cfg = add_ccnet_config(get_cfg())
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(["MODEL.WEIGHTS", weights, *opts])
    model = build_model(cfg)
    DetectionCheckpointer(model).load(weights)
    calibration = calibration_inputs(cfg, calibration_images)
    sample = calibration[0][0] if calibration[0].ndim == 4 else calibration[0]
    with tempfile.TemporaryDirectory() as workdir:
        path = export_model(model.eval(), torch.from_numpy(sample).to(model.device), workdir, "onnx")
        int8_path = quantize_int8(path, calibration, os.path.join(workdir, INT8_FILE_NAME))
        result = int8_accuracy(cfg, path, int8_path)
    return {"config": os.path.basename(config_file), "dataset": cfg.DATASETS.TEST[0],
            "calibration_images": len(calibration), **result}


def format_table(rows: List[dict], header: bool = True) -> str:
    lines = ["| model | input | device | runtime | median latency (s) | GFLOPs | GFLOP/s | of GEMM rate "
             "| peak extra memory (MiB) | note |",
             "|---|---|---|---|---|---|---|---|---|---|"] if header else []
    for r in rows:
        latency = f"{r['latency_s']:.2f}" if "latency_s" in r else "-"
        rate = f"{r['gflop_per_s']:.0f}" if "gflop_per_s" in r else "-"
        share = f"{100 * r['of_gemm']:.0f} %" if "of_gemm" in r else "-"
        memory = f"{r['memory_mib']:.0f}" if "memory_mib" in r else "-"
        lines.append(f"| {r['model']} | {r['input']} | {r['device']} | {r['runtime']} | {latency} | {r['gflops']:.0f} "
                     f"| {rate} | {share} | {memory} | {r.get('note', '')} |")
    return "\n".join(lines)


def format_throughput_table(rows: List[dict], header: bool = True) -> str:
    lines = ["| model | input | device | runtime | images | images/s | note |",
             "|---|---|---|---|---|---|---|"] if header else []
    for r in rows:
        rate = f"{r['images_per_s']:.2f}" if "images_per_s" in r else "-"
        lines.append(f"| {r['model']} | {r['input']} | {r['device']} | {r['runtime']} | {r['images']} | {rate} "
                     f"| {r.get('note', '')} |")
    return "\n".join(lines)


def format_int8_accuracy(rows: List[dict]) -> str:
    lines = ["| config | test set (images) | calibration images | metric | float | INT8 |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        where = f"| {row['config']} | {row['dataset']} ({row['images']}) | {row['calibration_images']} "
        for metric, value in row["float"].items():
            lines.append(where + f"| {metric} | {value:.2f} | {row['int8'][metric]:.2f} |")
        if "pixel_agreement" in row:
            lines.append(where + f"| pixels labelled as by the float file (%) | 100 | {row['pixel_agreement']:.2f} |")
    return "\n".join(lines)


def format_profiles(rows: List[dict]) -> str:
    """Per profiled row: the operator types taking the most time in one run, with their share of all nodes."""
    lines = []
    for r in rows:
        if "operators" in r:
            total = r["operators_total_ms"]
            top = ", ".join(f"{op} {ms:.0f} ms ({100 * ms / total:.0f} %)" for op, ms in r["operators"])
            lines.append(f"- {r['model']} {r['input']} {r['device']} {r['runtime']}: nodes {total:.0f} ms; {top}")
    return "\n".join(lines)


def gemm_lines(rates: Dict[str, Dict[str, float]], when: str) -> List[str]:
    """The GEMM rates measured ``when``, per device and library."""
    return [f"float32 square GEMMs on {device} {when}, median of 9 after 1 s of warm-up: "
            + ", ".join(f"{name} {rate:.0f} GFLOP/s" for name, rate in by_runtime.items())
            for device, by_runtime in rates.items()]


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

