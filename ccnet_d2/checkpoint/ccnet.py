"""Converter of published CCNet segmentation checkpoints to the parameter names of ccnet_d2's
``CCNetSegmentor`` (``backbone.*``, ``sem_seg_head.*``).

``"official"``: the Cityscapes models of the authors' repository (speedinghzl/CCNet, the 2018 code the
released files come from): a deep-stem ResNet (``conv1..3``/``bn1..3``, ``layer1..4``, the MIT CSAIL
layout), the RCCA head ``head.{conva, cca, convb, bottleneck}`` whose classifier is
``head.bottleneck.3`` (after InPlace-ABN and Dropout2d), and the auxiliary head ``dsn`` on layer3. Two
steps are more than a renaming:

- every norm is an InPlace-ABN, which scales by ``|w| + eps`` (its eps, 1e-5, is also the variance
  eps), in training and evaluation alike: the converted BN weight is ``|w| + eps``;
- ``dsn.0`` has a bias before its norm: ``BN(conv(x) + b)`` is ``BN(conv(x))`` with running mean
  ``mean - b``, so the bias is folded into the running mean.

The files hold no BN ``num_batches_tracked``; zeros are written, so the model's state dict is complete.
R is not stored in them: the config gives it (``MODEL.CCNET.RECURRENCE``). The config that reproduces
the official network is ``configs/Cityscapes-SemanticSegmentation/ccnet_R_101_official_r{1,2}_*``.

``"mmseg"``: mmsegmentation's CCNet model zoo (``{"meta", "state_dict"}`` files): a ResNetV1c
(``backbone.stem.{0,1,3,4,6,7}``, ``backbone.layer1..4``), ``decode_head.{convs.0, cca, convs.1,
conv_cat, conv_seg}`` and ``auxiliary_head.{convs.0, conv_seg}``, with plain BatchNorm. Only the names
change, and gamma, stored 0-dim (``decode_head.cca.gamma.scale``), gets the shape [1]. The configs
``configs/*/ccnet_R_*_mmseg_*`` reproduce its networks (32/32/64 stem, contracted dilation, ReLU,
256-channel auxiliary head).
"""
from typing import Dict, List, Mapping

import torch

from .convert import ConversionResult, _module_name

__all__ = ["CCNET_FORMATS", "INPLACE_ABN_EPS", "convert_ccnet_state_dict", "compare_with_model", "conversion_problems"]

CCNET_FORMATS = ("official", "mmseg")
INPLACE_ABN_EPS = 1e-5

_HEAD = "sem_seg_head."
_BLOCK = _HEAD + "rcca_block."
# Official head modules -> ccnet_d2 modules.
_OFFICIAL_HEAD_MODULES = {
    "head.conva.0": _BLOCK + "reduce", "head.conva.1": _BLOCK + "reduce.norm",
    "head.cca.query_conv": _BLOCK + "rcca.attention.query_conv",
    "head.cca.key_conv": _BLOCK + "rcca.attention.key_conv",
    "head.cca.value_conv": _BLOCK + "rcca.attention.value_conv",
    "head.convb.0": _BLOCK + "post", "head.convb.1": _BLOCK + "post.norm",
    "head.bottleneck.0": _BLOCK + "bottleneck", "head.bottleneck.1": _BLOCK + "bottleneck.norm",
    "head.bottleneck.3": _HEAD + "predictor",
    "dsn.0": _HEAD + "aux_head.0", "dsn.1": _HEAD + "aux_head.0.norm", "dsn.3": _HEAD + "aux_head.2",
}
_OFFICIAL_PARAMS = {"head.cca.gamma": _BLOCK + "rcca.attention.gamma"}
_MMSEG_MODULES = {
    "backbone.stem.0": "backbone.stem.conv1", "backbone.stem.1": "backbone.stem.conv1.norm",
    "backbone.stem.3": "backbone.stem.conv2", "backbone.stem.4": "backbone.stem.conv2.norm",
    "backbone.stem.6": "backbone.stem.conv3", "backbone.stem.7": "backbone.stem.conv3.norm",
    "decode_head.convs.0.conv": _BLOCK + "reduce", "decode_head.convs.0.bn": _BLOCK + "reduce.norm",
    "decode_head.cca.query_conv": _BLOCK + "rcca.attention.query_conv",
    "decode_head.cca.key_conv": _BLOCK + "rcca.attention.key_conv",
    "decode_head.cca.value_conv": _BLOCK + "rcca.attention.value_conv",
    "decode_head.convs.1.conv": _BLOCK + "post", "decode_head.convs.1.bn": _BLOCK + "post.norm",
    "decode_head.conv_cat.conv": _BLOCK + "bottleneck", "decode_head.conv_cat.bn": _BLOCK + "bottleneck.norm",
    "decode_head.conv_seg": _HEAD + "predictor",
    "auxiliary_head.convs.0.conv": _HEAD + "aux_head.0", "auxiliary_head.convs.0.bn": _HEAD + "aux_head.0.norm",
    "auxiliary_head.conv_seg": _HEAD + "aux_head.2",
}
_MMSEG_PARAMS = {"decode_head.cca.gamma.scale": _BLOCK + "rcca.attention.gamma"}
_PARAMS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_GAMMA_KEYS = {"official": "head.cca.gamma", "mmseg": "decode_head.cca.gamma.scale"}
# Conv biases that precede a norm: source bias -> the norm whose running mean absorbs it.
_FOLDED_BIASES = {"dsn.0.bias": "dsn.1"}


def _target(key: str, source_format: str) -> str:
    """ccnet_d2 name of a source key, or '' when no rule covers it."""
    params, modules, backbone_prefix = {
        "official": (_OFFICIAL_PARAMS, _OFFICIAL_HEAD_MODULES, ""),
        "mmseg": (_MMSEG_PARAMS, _MMSEG_MODULES, "backbone."),
    }[source_format]
    if key in params:
        return params[key]
    module, _, param = key.rpartition(".")
    if module in modules:
        return f"{modules[module]}.{param}"
    if param in _PARAMS and module.startswith(backbone_prefix):
        backbone = _module_name(module[len(backbone_prefix):], "mit")
        # The MIT names cover the layers; mmseg's stem is ``backbone.stem.<i>`` (matched above).
        if backbone and (source_format == "official" or not backbone.startswith("stem.")):
            return f"backbone.{backbone}.{param}"
    return ""


def convert_ccnet_state_dict(state_dict: Mapping[str, torch.Tensor], source_format: str) -> ConversionResult:
    """Rename (and, for the official InPlace-ABN and folded bias, transform) a published CCNet state dict.

    Keys that no rule covers are listed in ``unmapped`` and left out; the caller decides whether that
    is an error (``tools/convert_ccnet_checkpoint.py`` makes it one unless told otherwise).
    """
    if source_format not in CCNET_FORMATS:
        raise ValueError(f"source_format must be one of {CCNET_FORMATS}, got {source_format!r}")
    gamma_key = _GAMMA_KEYS[source_format]
    if gamma_key not in state_dict:
        other = [f for f, k in _GAMMA_KEYS.items() if k in state_dict]
        hint = f"; it looks like format {other[0]!r}" if other else f" (first keys: {list(state_dict)[:5]})"
        raise ValueError(f"no {gamma_key!r} in the state dict: not a {source_format} CCNet checkpoint{hint}")
    official = source_format == "official"
    result = ConversionResult()
    norms: Dict[str, str] = {}  # source norm module -> target norm module
    for key, value in state_dict.items():
        if official and key in _FOLDED_BIASES:
            result.dropped.append(key)
            continue
        target = _target(key, source_format)
        if not target:
            result.unmapped.append(key)
            continue
        module, _, param = target.rpartition(".")
        if module.endswith(".norm"):
            norms[key.rpartition(".")[0]] = module
            if official and param == "weight":
                value = value.abs() + INPLACE_ABN_EPS
        if key == gamma_key:
            value = value.reshape(1)
        result.renamed[key] = target
        result.model[target] = value.detach()
    if official:
        for bias_key, norm in _FOLDED_BIASES.items():
            if bias_key in state_dict and norm in norms:
                mean_key = f"{norms[norm]}.running_mean"
                result.model[mean_key] = result.model[mean_key] - state_dict[bias_key].detach()
    for module in norms.values():
        counter = f"{module}.num_batches_tracked"
        if counter not in result.model:
            result.model[counter] = torch.zeros((), dtype=torch.long, device=result.model[f"{module}.weight"].device)
    return result



def compare_with_model(converted: Mapping[str, torch.Tensor], model_state: Mapping[str, torch.Tensor]):
    """(missing, unexpected, mismatched): model keys the conversion left unset, converted keys the model
    lacks, and keys whose shapes differ (``"key: converted shape vs model shape"``)."""
    missing = sorted(set(model_state) - set(converted))
    unexpected = sorted(set(converted) - set(model_state))
    mismatched = [f"{k}: {tuple(converted[k].shape)} vs {tuple(model_state[k].shape)}"
                  for k in sorted(set(converted) & set(model_state)) if converted[k].shape != model_state[k].shape]
    return missing, unexpected, mismatched


def conversion_problems(result: ConversionResult, model_state: Mapping[str, torch.Tensor]) -> List[str]:
    """Everything that keeps a conversion from loading into a model, one line each: source keys no rule
    covers, model keys left unset, converted keys the model lacks, shape mismatches. Empty when it fits."""
    missing, unexpected, mismatched = compare_with_model(result.model, model_state)
    return ([f"source key no rule covers: {k}" for k in result.unmapped]
            + [f"model key left unset: {k}" for k in missing]
            + [f"converted key the model lacks: {k}" for k in unexpected]
            + [f"shape mismatch: {m}" for m in mismatched])
