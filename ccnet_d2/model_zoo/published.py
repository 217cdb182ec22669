"""The published CCNet checkpoints that ccnet_d2 converts, by name: the one table of them.

A name is ``<source>/<model>``; ``MODEL.WEIGHTS ccnet://<source>/<model>`` downloads, verifies,
converts and caches it (``ccnet_d2.model_zoo.weights``). Sources:

- ``mmseg``: mmsegmentation's CCNet model zoo (v0.5 files). The 8 hexadecimal digits at the end of each
  file name are the first digits of its sha256 (OpenMMLab's convention), which the download must match.
- ``official``: the authors' Cityscapes models (speedinghzl/CCNet README, Google Drive). No hash is
  published: a download is checked against the size the server announces, and the conversion checks
  every key and shape against the config's model.

The mIoU figures are the publishers' (single scale, val), not reproduced here.
"""
from dataclasses import dataclass
from typing import Dict, Optional

__all__ = ["PUBLISHED_CHECKPOINTS", "PublishedCheckpoint", "SCHEME", "published_checkpoint", "table_key", "markdown_table"]

SCHEME = "ccnet://"


@dataclass(frozen=True)
class PublishedCheckpoint:
    source: str  # the converter's --format: "mmseg" or "official"
    url: str
    config: str  # the ccnet_d2 config of the network, relative to configs/
    dataset: str
    miou: float  # the publisher's single-scale val mIoU
    sha256_prefix: Optional[str] = None  # the publisher's hash (a prefix of the file's sha256), if any


_MMSEG_URL = "https://download.openmmlab.com/mmsegmentation/v0.5/ccnet/{0}/{0}_{1}.pth"
_GOOGLE_DRIVE_URL = "https://drive.usercontent.google.com/download?id={}&export=download&confirm=t"
_CITYSCAPES = "Cityscapes-SemanticSegmentation/"


def _mmseg(model: str, stamp: str, config: str, dataset: str, miou: float) -> PublishedCheckpoint:
    return PublishedCheckpoint("mmseg", _MMSEG_URL.format(model, stamp), config, dataset, miou,
                               sha256_prefix=stamp.rsplit("-", 1)[1])


PUBLISHED_CHECKPOINTS: Dict[str, PublishedCheckpoint] = {
    "official/ccnet_r101_r1_cityscapes": PublishedCheckpoint(
        "official", _GOOGLE_DRIVE_URL.format("13j06I4e50T41j_2HQl4sksrLZihax94L"),
        _CITYSCAPES + "ccnet_R_101_official_r1_769x769_cityscapes.yaml", "Cityscapes", 77.91),
    "official/ccnet_r101_r2_cityscapes": PublishedCheckpoint(
        "official", _GOOGLE_DRIVE_URL.format("1IxXm8qxKmfDPVRtT8uuDNEvSQsNVTfLC"),
        _CITYSCAPES + "ccnet_R_101_official_r2_769x769_cityscapes.yaml", "Cityscapes", 79.74),
    "official/ccnet_r101_r2_ohem_cityscapes": PublishedCheckpoint(
        "official", _GOOGLE_DRIVE_URL.format("1eiX1Xf1o16DvQc3lkFRi4-Dk7IBVspUQ"),
        _CITYSCAPES + "ccnet_R_101_official_r2_769x769_cityscapes.yaml", "Cityscapes", 80.00),
}
for _model, _stamp, _config, _dataset, _miou in (
    ("ccnet_r50-d8_512x1024_40k_cityscapes", "20200616_142517-4123f401", "ccnet_R_50_mmseg_512x1024", "Cityscapes", 77.76),
    ("ccnet_r101-d8_512x1024_40k_cityscapes", "20200616_142540-a3b84ba6", "ccnet_R_101_mmseg_512x1024", "Cityscapes", 76.35),
    ("ccnet_r50-d8_769x769_40k_cityscapes", "20200616_145125-76d11884", "ccnet_R_50_mmseg_769x769", "Cityscapes", 78.46),
    ("ccnet_r101-d8_769x769_40k_cityscapes", "20200617_101428-4f57c8d0", "ccnet_R_101_mmseg_769x769", "Cityscapes", 76.94),
    ("ccnet_r50-d8_512x1024_80k_cityscapes", "20200617_010421-869a3423", "ccnet_R_50_mmseg_512x1024", "Cityscapes", 79.03),
    ("ccnet_r101-d8_512x1024_80k_cityscapes", "20200617_203935-ffae8917", "ccnet_R_101_mmseg_512x1024", "Cityscapes", 78.87),
    ("ccnet_r50-d8_769x769_80k_cityscapes", "20200617_010421-73eed8ca", "ccnet_R_50_mmseg_769x769", "Cityscapes", 79.29),
    ("ccnet_r101-d8_769x769_80k_cityscapes", "20200618_011502-ad3cd481", "ccnet_R_101_mmseg_769x769", "Cityscapes", 79.45),
    ("ccnet_r50-d8_512x512_80k_ade20k", "20200615_014848-aa37f61e", "ccnet_R_50_mmseg_512x512", "ADE20K", 41.78),
    ("ccnet_r101-d8_512x512_80k_ade20k", "20200615_014848-1f4929a3", "ccnet_R_101_mmseg_512x512", "ADE20K", 43.97),
    ("ccnet_r50-d8_512x512_160k_ade20k", "20200616_084435-7c97193b", "ccnet_R_50_mmseg_512x512", "ADE20K", 42.08),
    ("ccnet_r101-d8_512x512_160k_ade20k", "20200616_000644-e849e007", "ccnet_R_101_mmseg_512x512", "ADE20K", 43.71),
    ("ccnet_r50-d8_512x512_20k_voc12aug", "20200617_193212-fad81784", "ccnet_R_50_mmseg_512x512", "VOC 2012 + aug", 76.17),
    ("ccnet_r101-d8_512x512_20k_voc12aug", "20200617_193212-0007b61d", "ccnet_R_101_mmseg_512x512", "VOC 2012 + aug", 77.27),
    ("ccnet_r50-d8_512x512_40k_voc12aug", "20200613_232127-c2a15f02", "ccnet_R_50_mmseg_512x512", "VOC 2012 + aug", 75.96),
    ("ccnet_r101-d8_512x512_40k_voc12aug", "20200613_232127-c30da577", "ccnet_R_101_mmseg_512x512", "VOC 2012 + aug", 77.87),
):
    _folder, _suffix = {"Cityscapes": (_CITYSCAPES, "cityscapes"),
                        "ADE20K": ("ADE20K-SemanticSegmentation/", "ade20k"),
                        "VOC 2012 + aug": ("PascalVOC-SemanticSegmentation/", "voc12aug")}[_dataset]
    PUBLISHED_CHECKPOINTS["mmseg/" + _model] = _mmseg(_model, _stamp, f"{_folder}{_config}_{_suffix}.yaml",
                                                      _dataset, _miou)


def table_key(name: str) -> str:
    """``<source>/<model>`` of a name given with or without ``ccnet://``."""
    return name[len(SCHEME):] if name.startswith(SCHEME) else name


def published_checkpoint(name: str) -> PublishedCheckpoint:
    """The entry of ``name`` (``<source>/<model>``, with or without ``ccnet://``); a KeyError lists the names."""
    key = table_key(name)
    if key not in PUBLISHED_CHECKPOINTS:
        raise KeyError(f"no published checkpoint {name!r}; the names are (docs/MODEL_ZOO.md): "
                       + ", ".join(SCHEME + k for k in PUBLISHED_CHECKPOINTS))
    return PUBLISHED_CHECKPOINTS[key]


def markdown_table() -> str:
    """The table as docs/MODEL_ZOO.md shows it (a test keeps the two identical)."""
    lines = ["| `MODEL.WEIGHTS` | dataset | their mIoU | config (`configs/...`) | hash checked |", "|---|---|---|---|---|"]
    for name, entry in PUBLISHED_CHECKPOINTS.items():
        check = f"sha256 `{entry.sha256_prefix}...`" if entry.sha256_prefix else "none published (size, keys, shapes)"
        lines.append(f"| `{SCHEME}{name}` | {entry.dataset} | {entry.miou:.2f} | `{entry.config}` | {check} |")
    return "\n".join(lines)
