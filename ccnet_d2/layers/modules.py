"""Criss-cross attention as modules: CrissCrossAttention (one CCA with its residual), RCCA (one shared
CrissCrossAttention applied R times) and RCCAHeadBlock (the CCNet head's context block around RCCA);
their clip versions CrissCrossAttention3d and RCCA3d, which attend along time too."""
import torch
from torch import nn

from detectron2.config import configurable
from detectron2.layers import CNNBlockBase, Conv2d, get_norm

from .criss_cross import BACKENDS, criss_cross_attention
from .criss_cross_3d import BACKENDS_3D, criss_cross_attention_3d

__all__ = ["CrissCrossAttention", "RCCA", "RCCAHeadBlock", "CrissCrossAttention3d", "RCCA3d", "get_activation",
           "check_recurrence", "per_frame"]


def get_activation(name: str) -> nn.Module:
    """'relu', 'leaky_relu' (slope 0.01, the official code's InPlaceABN default) or 'none'."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    if name in ("none", "", None):
        return nn.Identity()
    raise ValueError(f"activation must be 'relu', 'leaky_relu' or 'none', got {name!r}")


def check_recurrence(recurrence, owner: str) -> int:
    """R, the number of criss-cross loops: an integer >= 1 (R = 0 would silently drop the attention)."""
    if isinstance(recurrence, bool) or not isinstance(recurrence, int) or recurrence < 1:
        raise ValueError(f"{owner}: recurrence must be an integer >= 1 (2 gives full-image context, as in "
                         f"the paper), got {recurrence!r}; without attention use a plain FCN head")
    return recurrence


class CrissCrossAttention(nn.Module):
    """1x1 convs to query/key (C // reduction channels) and value (C channels), the criss-cross
    operator, then ``gamma * attention + x``. gamma is a learnable scalar initialised to 0, so the
    module starts as the identity and pretrained networks keep their outputs at step 0."""

    backends = BACKENDS
    spatial_axes = ("H", "W")  # of the input [B, C, H, W]

    def __init__(self, in_channels: int, reduction: int = 8, backend: str = "auto"):
        super().__init__()
        if in_channels < 1 or reduction < 1:
            raise ValueError(f"CrissCrossAttention: in_channels and reduction must be >= 1, "
                             f"got {in_channels} and {reduction}")
        if backend not in self.backends:
            raise ValueError(f"{type(self).__name__}: backend must be one of {self.backends}, got {backend!r}")
        qk_channels = max(1, in_channels // reduction)
        self.in_channels = in_channels
        self.backend = backend
        self.query_conv = nn.Conv2d(in_channels, qk_channels, kernel_size=1)
        self.key_conv = nn.Conv2d(in_channels, qk_channels, kernel_size=1)
        self.value_conv = nn.Conv2d(in_channels, in_channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 + len(self.spatial_axes) or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected input [B, {self.in_channels}, "
                             f"{', '.join(self.spatial_axes)}], got {tuple(x.shape)}")
        return self.gamma * self.attend(x) + x

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """The attention output before the residual: the operator on x's query, key and value."""
        return criss_cross_attention(self.query_conv(x), self.key_conv(x), self.value_conv(x), self.backend)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, backend={self.backend!r}"


class RCCA(CNNBlockBase):
    """Recurrent criss-cross attention (the paper's RCCA module): one CrissCrossAttention applied
    ``recurrence`` times with shared weights. Two loops give every pixel a path to every other pixel.

    Channels and resolution are kept (a stride-1 block), and with gamma = 0 at initialisation the
    module is the identity, so pretrained networks keep their outputs at step 0. It is the block that
    Mask R-CNN + RCCA inserts into its ResNet, and the attention inside ``RCCAHeadBlock``.
    """

    attention_class = CrissCrossAttention

    @configurable
    def __init__(self, channels: int, *, recurrence: int = 2, reduction: int = 8, backend: str = "auto"):
        super().__init__(channels, channels, 1)
        self.recurrence = check_recurrence(recurrence, type(self).__name__)
        self.attention = self.attention_class(channels, reduction=reduction, backend=backend)

    @classmethod
    def from_config(cls, cfg, channels: int):
        return {
            "channels": channels,
            "recurrence": cfg.MODEL.CCNET.RECURRENCE,
            "reduction": cfg.MODEL.CCNET.REDUCTION,
            "backend": cfg.MODEL.CCNET.BACKEND,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.recurrence):
            x = self.attention(x)
        return x

    def extra_repr(self) -> str:
        return f"recurrence={self.recurrence}"


class RCCAHeadBlock(nn.Module):
    """The context block of the CCNet segmentation head, built around RCCA.

    3x3 conv-norm-act to ``inner_channels``; ``RCCA`` (R loops of one shared CrissCrossAttention);
    3x3 conv-norm-act; concatenation with the block's input; 3x3 bottleneck conv-norm-act to
    ``out_channels``; dropout.
    """

    rcca_class = RCCA

    @configurable
    def __init__(self, in_channels: int, *, out_channels: int = 512, inner_channels: int = 512,
                 recurrence: int = 2, reduction: int = 8, norm: str = "BN", activation: str = "relu",
                 dropout: float = 0.0, backend: str = "auto"):
        super().__init__()

        def conv_norm_act(cin, cout):
            return Conv2d(cin, cout, kernel_size=3, padding=1, bias=not norm, norm=get_norm(norm, cout),
                          activation=get_activation(activation))

        self.reduce = conv_norm_act(in_channels, inner_channels)
        self.rcca = self.rcca_class(inner_channels, recurrence=recurrence, reduction=reduction, backend=backend)
        self.post = conv_norm_act(inner_channels, inner_channels)
        self.bottleneck = conv_norm_act(in_channels + inner_channels, out_channels)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.out_channels = out_channels

    @classmethod
    def from_config(cls, cfg, in_channels: int):
        attention_keys = RCCA.from_config(cfg, channels=in_channels)  # recurrence, reduction, backend
        del attention_keys["channels"]
        return {
            **attention_keys,
            "in_channels": in_channels,
            "out_channels": cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM,
            "inner_channels": cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM,
            "norm": cfg.MODEL.SEM_SEG_HEAD.NORM,
            "activation": cfg.MODEL.CCNET.ACTIVATION,
            "dropout": cfg.MODEL.CCNET.DROPOUT,
        }

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """The attended features after the R loops and the post conv (before concatenation): the
        features the category-consistent loss is applied to."""
        return self.post(self.rcca(self.reduce(x)))

    def forward_with_context(self, x: torch.Tensor):
        """(block output, context features): one pass serving both the classifier and the
        category-consistent loss."""
        context = self.context(x)
        return self.fuse(x, context), context

    def fuse(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The block's output from its input and the context features: concatenation, bottleneck, dropout."""
        return self.dropout(self.bottleneck(torch.cat([x, context], dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_context(x)[0]


def per_frame(module: nn.Module, clip: torch.Tensor) -> torch.Tensor:
    """Apply a module of [N, C, H, W] images to every frame of a [B, C, T, H, W] clip."""
    b, _, t = clip.shape[:3]
    out = module(clip.transpose(1, 2).flatten(0, 1))
    return out.view(b, t, *out.shape[1:]).transpose(1, 2)


class CrissCrossAttention3d(CrissCrossAttention):
    """CrissCrossAttention over [B, C, T, H, W] clips: the same per-frame 1x1 query/key/value convs
    (the parameters of the 2D module, so 2D weights load as they are), 3D criss-cross attention
    (T+H+W-2 positions per voxel), ``gamma * attention + x`` with gamma starting at 0."""

    backends = BACKENDS_3D
    spatial_axes = ("T", "H", "W")

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        query, key, value = (per_frame(conv, x) for conv in (self.query_conv, self.key_conv, self.value_conv))
        return criss_cross_attention_3d(query, key, value, self.backend)


class RCCA3d(RCCA):
    """RCCA over clips: one shared CrissCrossAttention3d applied ``recurrence`` times. Two loops reach
    every voxel that differs from a voxel in two of (frame, row, column), three loops every voxel of the
    clip. Built from a config like RCCA: ``RCCA3d(cfg, channels)``."""

    attention_class = CrissCrossAttention3d
