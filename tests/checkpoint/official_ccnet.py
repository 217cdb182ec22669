"""The official CCNet Cityscapes network, written for the tests from its published architecture and
named like its checkpoints, as an independent reference for the checkpoint converter.

What it reproduces (the authors' 2018 code): InPlace-ABN norms that scale by |w| + eps (leaky ReLU 0.01
in the head and the auxiliary head, none in the backbone, which has separate ReLUs); a deep stem
(3x3 convs 64, 64, 128) with a ceil-mode max-pool; stride in the 3x3 conv; every block of layer3 and
layer4 dilated 2 and 4; the RCCA head (``conva``, ``cca`` applied R times, ``convb``, ``bottleneck``
whose index 3 is the classifier); the auxiliary ``dsn`` on layer3, whose first conv has a bias; and its
evaluation: no padding, logits upsampled with ``align_corners=True``, per window when sliding. The
attention is the slow loop of ``tests/layers/reference.py``. Widths are parameters, so tests can run
narrow copies in float64; ``OfficialCCNet(101)`` has the published shapes.
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

from tests.layers.reference import loop_criss_cross

ABN_EPS = 1e-5
BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class InPlaceABN(nn.Module):
    """Evaluation-mode InPlace-ABN: (x - mean) / sqrt(var + eps) * (|w| + eps) + b, then the activation."""

    def __init__(self, channels, leaky=False):
        super().__init__()
        self.leaky = leaky
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x):
        scale = (self.weight.abs() + ABN_EPS) / torch.sqrt(self.running_var + ABN_EPS)
        y = (x - self.running_mean.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return F.leaky_relu(y, 0.01) if self.leaky else y


def conv3x3(cin, cout, stride=1, dilation=1, bias=False):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=bias)


class Bottleneck(nn.Module):
    """The torchvision-style bottleneck both references share (stride in the 3x3 conv); ``norm`` is
    the norm class (InPlace-ABN here, BatchNorm in mmsegmentation)."""

    def __init__(self, cin, planes, stride=1, dilation=1, downsample=None, norm=InPlaceABN):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = norm(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = norm(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class CrissCrossAttention(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.query_conv = nn.Conv2d(channels, channels // 8, 1)
        self.key_conv = nn.Conv2d(channels, channels // 8, 1)
        self.value_conv = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out, _ = loop_criss_cross(self.query_conv(x), self.key_conv(x), self.value_conv(x))
        return self.gamma * out.to(x.dtype) + x


class OfficialCCNet(nn.Module):
    """``ResNet`` + ``RCCAModule`` + ``dsn`` of the official code; ``width`` scales every channel count
    (64 = the published network)."""

    def __init__(self, depth=101, num_classes=19, width=64, head_channels=512):
        super().__init__()
        stem = 2 * width
        self.conv1, self.bn1 = conv3x3(3, width, stride=2), InPlaceABN(width)
        self.conv2, self.bn2 = conv3x3(width, width), InPlaceABN(width)
        self.conv3, self.bn3 = conv3x3(width, stem), InPlaceABN(stem)
        cin = stem
        for index, (blocks, stride, dilation) in enumerate(zip(BLOCKS[depth], (1, 2, 1, 1), (1, 1, 2, 4))):
            planes = width * 2 ** index
            downsample = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride=stride, bias=False),
                                       InPlaceABN(planes * 4))
            layer = [Bottleneck(cin, planes, stride, dilation, downsample)]
            layer += [Bottleneck(planes * 4, planes, 1, dilation) for _ in range(blocks - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*layer))
            cin = planes * 4
        self.head = nn.Module()
        self.head.conva = nn.Sequential(conv3x3(cin, head_channels), InPlaceABN(head_channels, leaky=True))
        self.head.cca = CrissCrossAttention(head_channels)
        self.head.convb = nn.Sequential(conv3x3(head_channels, head_channels), InPlaceABN(head_channels, leaky=True))
        self.head.bottleneck = nn.Sequential(conv3x3(cin + head_channels, head_channels),
                                             InPlaceABN(head_channels, leaky=True), nn.Dropout2d(0.1),
                                             nn.Conv2d(head_channels, num_classes, 1))
        aux_in = cin // 2
        self.dsn = nn.Sequential(conv3x3(aux_in, head_channels, bias=True), InPlaceABN(head_channels, leaky=True),
                                 nn.Dropout2d(0.1), nn.Conv2d(head_channels, num_classes, 1))

    def backbone(self, x):
        """(layer3, layer4) features at stride 8, sizes rounded up."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        x3 = self.layer3(self.layer2(self.layer1(x)))
        return x3, self.layer4(x3)

    def forward(self, x, recurrence=2):
        """Main logits at the feature resolution."""
        x = self.backbone(x)[1]
        out = self.head.conva(x)
        for _ in range(recurrence):
            out = self.head.cca(out)
        out = self.head.convb(out)
        return self.head.bottleneck(torch.cat([x, out], dim=1))

    def predict_whole(self, image, recurrence=2):
        """The official whole-image evaluation: logits upsampled to the image with align_corners=True."""
        return F.interpolate(self(image, recurrence), size=image.shape[-2:], mode="bilinear", align_corners=True)

    def predict_sliding(self, image, tile, recurrence=2):
        """The official ``predict_sliding``: tiles of ``tile`` x ``tile`` every ceil(2/3 tile), shifted
        back inside the image, each upsampled to the tile (align_corners=True), logits averaged."""
        height, width = image.shape[-2:]
        stride = math.ceil(tile * 2 / 3)
        rows = int(math.ceil((height - tile) / stride) + 1) if height > tile else 1
        cols = int(math.ceil((width - tile) / stride) + 1) if width > tile else 1
        windows = []
        for r in range(rows):
            for c in range(cols):
                y2, x2 = min(r * stride + tile, height), min(c * stride + tile, width)
                windows.append((max(y2 - tile, 0), max(x2 - tile, 0), y2, x2))
        return average_over_windows(image, windows, lambda crop: self.predict_whole(crop, recurrence))


def average_over_windows(image, windows, predict):
    """Logits of ``predict`` on each window (y1, x1, y2, x2), summed into place and averaged."""
    total = counts = None
    for y1, x1, y2, x2 in windows:
        logits = predict(image[:, :, y1:y2, x1:x2])
        if total is None:
            total = logits.new_zeros(logits.shape[:2] + image.shape[-2:])
            counts = logits.new_zeros((1, 1) + image.shape[-2:])
        total[:, :, y1:y2, x1:x2] += logits
        counts[:, :, y1:y2, x1:x2] += 1
    return total / counts

