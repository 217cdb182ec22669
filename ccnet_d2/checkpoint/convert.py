"""Converters from published ImageNet ResNet checkpoints to Detectron2's ResNet parameter names.

Two source layouts are understood:

- ``"torchvision"``: ``torchvision.models.resnet*`` state dicts. One 7x7 stem conv (``conv1``,
  ``bn1``), stages ``layer1..4`` of blocks ``conv{1,2,3}`` / ``bn{1,2,3}`` / ``downsample.{0,1}``, and
  the classifier ``fc``.
- ``"mit"``: the MIT CSAIL ImageNet ResNets (``resnet50-imagenet.pth``, ``resnet101-imagenet.pth``
  from CSAILVision/semantic-segmentation-pytorch), which the official CCNet code starts from. Same
  stages, but a deep stem of three 3x3 convs (``conv1`` 3->64 stride 2, ``conv2`` 64->64, ``conv3``
  64->128, each with ``bn1..3``), which Detectron2's ``DeepLabStem`` holds as ``stem.conv{1,2,3}``.

Both put a bottleneck's stride in its 3x3 conv, so models loading them need
``MODEL.RESNETS.STRIDE_IN_1X1: False`` (Detectron2's MSRA weights have it in the 1x1 conv).
``REQUIRED_CONFIG`` lists every key a config must set for each layout.

The result is a Detectron2 model-zoo style ``.pkl`` (``{"model", "__author__",
"matching_heuristics": True}``) with backbone-relative names (``stem.conv1.weight``,
``res2.0.conv1.norm.running_mean``, ``res2.0.shortcut.weight``): ``DetectionCheckpointer`` then
matches them by suffix, so the same file loads into a plain backbone (``backbone.res2...``) and into
an FPN (``backbone.bottom_up.res2...``).
"""
import hashlib
import pickle
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Tuple

import torch

__all__ = [
    "SOURCE_FORMATS",
    "REQUIRED_CONFIG",
    "ConversionResult",
    "convert_resnet_state_dict",
    "file_sha256",
    "load_source_state_dict",
    "infer_resnet_depth",
    "save_detectron2_checkpoint",
]

SOURCE_FORMATS = ("torchvision", "mit")

# ImageNet statistics of torchvision's training (RGB, 0-1 scale) expressed in Detectron2's 0-255 scale.
_IMAGENET_RGB_MEAN = [123.675, 116.28, 103.53]
_IMAGENET_RGB_STD = [58.395, 57.12, 57.375]

# Config values a model must use for converted weights to compute what they were trained to compute.
# torchvision normalises RGB images with the ImageNet mean/std; MIT CSAIL's current pipeline
# (semantic-segmentation-pytorch dataset.py) feeds the same RGB ImageNet normalisation.
REQUIRED_CONFIG: Dict[str, Dict[str, object]] = {
    "torchvision": {
        "MODEL.RESNETS.STEM_TYPE": "basic",
        "MODEL.RESNETS.STEM_OUT_CHANNELS": 64,
        "MODEL.RESNETS.STRIDE_IN_1X1": False,
        "INPUT.FORMAT": "RGB",
        "MODEL.PIXEL_MEAN": _IMAGENET_RGB_MEAN,
        "MODEL.PIXEL_STD": _IMAGENET_RGB_STD,
    },
    "mit": {
        "MODEL.RESNETS.STEM_TYPE": "deeplab",
        "MODEL.RESNETS.STEM_OUT_CHANNELS": 128,
        "MODEL.RESNETS.STRIDE_IN_1X1": False,
        "INPUT.FORMAT": "RGB",
        "MODEL.PIXEL_MEAN": _IMAGENET_RGB_MEAN,
        "MODEL.PIXEL_STD": _IMAGENET_RGB_STD,
    },
}

# Stem modules of each layout -> Detectron2 stem module names.
_STEM_NAMES = {
    "torchvision": {"conv1": "stem.conv1", "bn1": "stem.conv1.norm"},
    "mit": {"conv1": "stem.conv1", "bn1": "stem.conv1.norm",
            "conv2": "stem.conv2", "bn2": "stem.conv2.norm",
            "conv3": "stem.conv3", "bn3": "stem.conv3.norm"},
}
# layer<stage>.<block>.<module>.<param>; torchvision's layer1 is Detectron2's res2.
_BLOCK_KEY = re.compile(r"^layer(?P<stage>[1-4])\.(?P<block>\d+)\.(?P<module>conv\d|bn\d|downsample\.[01])$")
# Block modules -> Detectron2 block modules (the BN lives inside the conv as ``.norm``).
_BLOCK_NAMES = {**{f"conv{i}": f"conv{i}" for i in (1, 2, 3)}, **{f"bn{i}": f"conv{i}.norm" for i in (1, 2, 3)},
                "downsample.0": "shortcut", "downsample.1": "shortcut.norm"}
_PARAMS = ("weight", "bias", "running_mean", "running_var")
# ImageNet classifier and BN's batch counter: not part of a Detectron2 backbone.
_CLASSIFIER_PREFIX = "fc."
_BATCH_COUNTER = "num_batches_tracked"
# Block counts of (layer1, layer2, layer3, layer4) -> depth, for bottleneck and basic blocks.
_DEPTHS = {(True, (3, 4, 6, 3)): 50, (True, (3, 4, 23, 3)): 101, (True, (3, 8, 36, 3)): 152,
           (False, (2, 2, 2, 2)): 18, (False, (3, 4, 6, 3)): 34}


@dataclass
class ConversionResult:
    """Converted tensors under Detectron2 names, and what happened to every source key."""

    model: Dict[str, torch.Tensor] = field(default_factory=dict)
    renamed: Dict[str, str] = field(default_factory=dict)  # source key -> Detectron2 key
    dropped: List[str] = field(default_factory=list)  # classifier and BN batch counters, on purpose
    unmapped: List[str] = field(default_factory=list)  # keys no rule of the layout recognised

    def summary(self) -> str:
        lines = [f"{len(self.renamed)} tensors renamed, {len(self.dropped)} dropped "
                 f"(classifier 'fc', BN '{_BATCH_COUNTER}'), {len(self.unmapped)} unmapped"]
        lines += [f"  unmapped: {key}" for key in self.unmapped]
        return "\n".join(lines)


def _module_name(module: str, source_format: str) -> str:
    """Detectron2 module name of a source module, or '' when no rule covers it."""
    stem = _STEM_NAMES[source_format].get(module)
    if stem is not None:
        return stem
    match = _BLOCK_KEY.match(module)
    if match is None or match.group("module") not in _BLOCK_NAMES:
        return ""
    target = _BLOCK_NAMES[match.group("module")]
    return f"res{int(match.group('stage')) + 1}.{match.group('block')}.{target}"


def _check_stem(state_dict: Mapping[str, torch.Tensor], source_format: str) -> None:
    """Refuse a state dict whose stem is not the one of ``source_format`` (a 7x7 ``conv1`` alone for
    torchvision, 3x3 ``conv1..3`` for MIT), naming the layout it looks like."""
    if "conv1.weight" not in state_dict:
        raise ValueError(f"no 'conv1.weight' in the state dict (first keys: {list(state_dict)[:5]}): "
                         f"not a torchvision or MIT ResNet")
    kernel = tuple(state_dict["conv1.weight"].shape[-2:])
    deep_stem = "conv2.weight" in state_dict and "conv3.weight" in state_dict
    if source_format == "torchvision" and (kernel != (7, 7) or deep_stem):
        raise ValueError(f"not the torchvision layout: conv1 is {kernel[0]}x{kernel[1]}"
                         f"{' and there are stem convs conv2/conv3' if deep_stem else ''}; "
                         "for the MIT deep-stem ResNets use source format 'mit'")
    if source_format == "mit" and (kernel != (3, 3) or not deep_stem):
        raise ValueError(f"not the MIT deep-stem layout: conv1 is {kernel[0]}x{kernel[1]}"
                         f"{'' if deep_stem else ' and there are no stem convs conv2/conv3'}; "
                         "for torchvision ResNets use source format 'torchvision'")


def convert_resnet_state_dict(state_dict: Mapping[str, torch.Tensor], source_format: str) -> ConversionResult:
    """Rename a torchvision- or MIT-layout ResNet state dict to Detectron2's ResNet names.

    Tensors are kept as they are (no re-ordering or scaling is needed: both layouts store convs and
    BN parameters exactly as Detectron2's ``Conv2d`` + ``BatchNorm2d``/``FrozenBatchNorm2d`` do).
    Keys no rule recognises are listed in ``unmapped``, never silently kept.
    """
    if source_format not in SOURCE_FORMATS:
        raise ValueError(f"source_format must be one of {SOURCE_FORMATS}, got {source_format!r}")
    _check_stem(state_dict, source_format)
    result = ConversionResult()
    for key, value in state_dict.items():
        if key.startswith(_CLASSIFIER_PREFIX) or key.endswith("." + _BATCH_COUNTER):
            result.dropped.append(key)
            continue
        module, _, param = key.rpartition(".")
        target = _module_name(module, source_format) if param in _PARAMS else ""
        if not target:
            result.unmapped.append(key)
            continue
        result.renamed[key] = f"{target}.{param}"
        result.model[f"{target}.{param}"] = value.detach().cpu()
    return result


def infer_resnet_depth(state_dict: Mapping[str, torch.Tensor]) -> int:
    """ResNet depth (18/34/50/101/152) from the number of blocks per stage, for MODEL.RESNETS.DEPTH."""
    blocks: Dict[int, set] = {1: set(), 2: set(), 3: set(), 4: set()}
    bottleneck = False
    for key in state_dict:
        match = re.match(r"^layer([1-4])\.(\d+)\.(\w+)", key)
        if match:
            blocks[int(match.group(1))].add(int(match.group(2)))
            bottleneck |= match.group(3) == "conv3"
    counts: Tuple[int, ...] = tuple(len(blocks[stage]) for stage in (1, 2, 3, 4))
    depth = _DEPTHS.get((bottleneck, counts))
    if depth is None:
        raise ValueError(f"not a standard ResNet: blocks per stage layer1..4 = {counts} "
                         f"({'bottleneck' if bottleneck else 'basic'} blocks); expected one of "
                         f"{sorted(set(c for _, c in _DEPTHS))}")
    return depth


def load_source_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read a ``.pth`` state dict (tensors only). A ``{"state_dict": ...}`` or ``{"model": ...}``
    wrapper and a ``module.`` prefix on every key (DataParallel checkpoints) are removed."""
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (a ResNet's state_dict()), "
                         f"got {type(loaded).__name__}")
    if loaded and all(k.startswith("module.") for k in loaded):
        loaded = {k[len("module."):]: v for k, v in loaded.items()}
    return dict(loaded)


def file_sha256(path: str) -> str:
    """The sha256 of a file, read in 1 MiB chunks (checkpoints are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_detectron2_checkpoint(model: Mapping[str, torch.Tensor], path: str, author: str) -> str:
    """Write ``model`` as a Detectron2 model-zoo ``.pkl`` (numpy arrays, suffix matching on load) and
    return the file's sha256. ``.pkl`` is required: only for that extension does
    ``DetectionCheckpointer`` read ``matching_heuristics`` from the file itself."""
    if not path.endswith(".pkl"):
        raise ValueError(f"output must be a .pkl file (Detectron2 reads name-matching settings only from .pkl), "
                         f"got {path!r}")
    checkpoint = {"model": {k: v.numpy() for k, v in model.items()}, "__author__": author,
                  "matching_heuristics": True}
    data = pickle.dumps(checkpoint, protocol=pickle.HIGHEST_PROTOCOL)
    with open(path, "wb") as f:
        f.write(data)
    return hashlib.sha256(data).hexdigest()
