"""mmsegmentation's CCNet (``ccnet_r{50,101}-d8``), written for the tests from its published architecture
and named like its checkpoints, as an independent reference for the checkpoint converter.

What it reproduces: a ResNetV1c (deep stem ``stem.{0..8}`` of 3x3 convs to width/2, width/2, width, each
with BatchNorm and ReLU; a max-pool that rounds down; stride in the 3x3 conv; dilations 1, 1, 2, 4 with
``contract_dilation``: the first block of a dilated stage uses half the dilation); the CC head
(``convs.0``, ``cca`` applied R times and scaled by ``gamma.scale``, ``convs.1``, ``conv_cat`` over
[input, context], Dropout2d, ``conv_seg``); the FCN auxiliary head on layer3 (``convs.0``, ``conv_seg``);
and its inference: no padding, logits resized to the input (whole) or to each window (slide) with the
config's ``align_corners``. The attention is the slow loop of ``tests/layers/reference.py``.
"""
import torch
from torch import nn
from torch.nn import functional as F

from tests.layers.reference import loop_criss_cross

from .official_ccnet import BLOCKS, Bottleneck, average_over_windows
from .official_ccnet import CrissCrossAttention as OfficialCrissCrossAttention


class ConvModule(nn.Module):
    """mmcv's ConvModule as the CCNet heads use it: conv without bias, BatchNorm, ReLU."""

    def __init__(self, cin, cout, kernel):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.0))


class CrissCrossAttention(OfficialCrissCrossAttention):
    """mmcv's module: the same convs, gamma held by a ``Scale`` (0-dim ``gamma.scale``)."""

    def __init__(self, channels):
        super().__init__(channels)
        del self.gamma  # a parameter there; a module here
        self.gamma = Scale()

    def forward(self, x):
        out, _ = loop_criss_cross(self.query_conv(x), self.key_conv(x), self.value_conv(x))
        return self.gamma.scale * out.to(x.dtype) + x


class ResNetV1c(nn.Module):
    def __init__(self, depth, width):
        super().__init__()
        half = width // 2
        self.stem = nn.Sequential(
            nn.Conv2d(3, half, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(half), nn.ReLU(),
            nn.Conv2d(half, half, 3, padding=1, bias=False), nn.BatchNorm2d(half), nn.ReLU(),
            nn.Conv2d(half, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        cin = width
        for index, (blocks, stride, dilation) in enumerate(zip(BLOCKS[depth], (1, 2, 1, 1), (1, 1, 2, 4))):
            planes = width * 2 ** index
            downsample = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * 4))
            first_dilation = dilation // 2 if dilation > 1 else 1  # contract_dilation
            layer = [Bottleneck(cin, planes, stride, first_dilation, downsample, norm=nn.BatchNorm2d)]
            layer += [Bottleneck(planes * 4, planes, 1, dilation, norm=nn.BatchNorm2d) for _ in range(blocks - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*layer))
            cin = planes * 4

    def forward(self, x):
        x = F.max_pool2d(self.stem(x), kernel_size=3, stride=2, padding=1)
        x3 = self.layer3(self.layer2(self.layer1(x)))
        return x3, self.layer4(x3)


class MMSegCCNet(nn.Module):
    """``EncoderDecoder`` with ResNetV1c, CCHead and FCNHead; ``width`` scales the backbone (64 = the
    published network), ``channels`` the heads (512 and 256 published)."""

    def __init__(self, depth=101, num_classes=19, width=64, channels=512, aux_channels=256, align_corners=False):
        super().__init__()
        self.align_corners = align_corners
        self.backbone = ResNetV1c(depth, width)
        cin = width * 32
        self.decode_head = nn.Module()
        self.decode_head.convs = nn.Sequential(ConvModule(cin, channels, 3), ConvModule(channels, channels, 3))
        self.decode_head.cca = CrissCrossAttention(channels)
        self.decode_head.conv_cat = ConvModule(cin + channels, channels, 3)
        self.decode_head.conv_seg = nn.Conv2d(channels, num_classes, 1)
        self.auxiliary_head = nn.Module()
        self.auxiliary_head.convs = nn.Sequential(ConvModule(cin // 2, aux_channels, 3))
        self.auxiliary_head.conv_seg = nn.Conv2d(aux_channels, num_classes, 1)

    def forward(self, x, recurrence=2):
        """Decode-head logits at the feature resolution (dropout is the identity at inference)."""
        x = self.backbone(x)[1]
        head = self.decode_head
        out = head.convs[0](x)
        for _ in range(recurrence):
            out = head.cca(out)
        out = head.conv_cat(torch.cat([x, head.convs[1](out)], dim=1))
        return head.conv_seg(out)

    def auxiliary(self, x):
        return self.auxiliary_head.conv_seg(self.auxiliary_head.convs(self.backbone(x)[0]))

    def predict_whole(self, image):
        return F.interpolate(self(image), size=image.shape[-2:], mode="bilinear", align_corners=self.align_corners)

    def predict_slide(self, image, crop, stride):
        """``EncoderDecoder.slide_inference``: windows clipped to the image, logits averaged."""
        height, width = image.shape[-2:]
        rows = max(height - crop + stride - 1, 0) // stride + 1
        cols = max(width - crop + stride - 1, 0) // stride + 1
        windows = []
        for r in range(rows):
            for c in range(cols):
                y2, x2 = min(r * stride + crop, height), min(c * stride + crop, width)
                windows.append((max(y2 - crop, 0), max(x2 - crop, 0), y2, x2))
        return average_over_windows(image, windows, self.predict_whole)
