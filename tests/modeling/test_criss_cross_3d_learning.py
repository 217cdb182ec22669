"""What 3D criss-cross attention is for, as a learning test: each loop moves information along one of a
voxel's three lines (time, column, row), so a cue that differs from a voxel in k coordinates needs k loops.

Task: clips of T=3 black 12x12 frames hold one cue voxel of colour A or B; every pixel of the centre
frame has the cue's class. Training cues are in any frame, evaluated ones in a frame other than the centre. The model is a per-frame 1x1 stem and
the real CCNetVideoHead (RCCA3d over the clip, the rest of the head on the centre frame). Its 3x3
convolutions are per frame and reach 3 pixels (one before the attention, two after), never another
frame. Centre-frame pixels more than 3 rows from the cue:

- "two" (within 1 column of the cue: frame and row differ): R = 2 learns them (time line, then
  column); R = 1 and per-frame 2D attention (R = 2 in each frame) stay at chance;
- "three" (also more than 3 columns away: all three coordinates differ): R = 3 learns them, R = 2
  stays at chance.
"""
import torch
from torch import nn

from detectron2.layers import ShapeSpec

from ccnet_d2.layers import RCCA, per_frame
from ccnet_d2.modeling.heads import CCNetVideoHead, VideoRCCAHeadBlock

FRAMES = 3
CENTRE = FRAMES // 2
SIZE = 12
CONV_REACH = 3
CHANNELS = 16
STEPS = 110
BATCH = 32


def cue_batch(n: int, generator: torch.Generator, in_centre_frame: bool = True):
    """Clips [n, 3, T, S, S] (channel 0 marks the cue, channel 1 + class its colour), centre-frame
    labels [n, S, S] and every centre pixel's row and column distance from the cue. The cue is in any
    frame (training: the centre frame's cues teach the convolutions what a cue is) or, without
    ``in_centre_frame``, in any other (evaluation)."""
    if in_centre_frame:
        frame = torch.randint(0, FRAMES, (n,), generator=generator)
    else:
        frame = torch.randint(0, FRAMES - 1, (n,), generator=generator)
        frame = frame + (frame >= CENTRE).long()
    cy, cx = (torch.randint(0, SIZE, (n,), generator=generator) for _ in range(2))
    classes = torch.randint(0, 2, (n,), generator=generator)
    clips = torch.zeros(n, 3, FRAMES, SIZE, SIZE)
    index = torch.arange(n)
    clips[index, 0, frame, cy, cx] = 1.0
    clips[index, 1 + classes, frame, cy, cx] = 1.0
    labels = classes.view(n, 1, 1).expand(n, SIZE, SIZE).clone()
    dy = (torch.arange(SIZE).view(1, SIZE, 1) - cy.view(n, 1, 1)).abs().expand(n, SIZE, SIZE)
    dx = (torch.arange(SIZE).view(1, 1, SIZE) - cx.view(n, 1, 1)).abs().expand(n, SIZE, SIZE)
    return clips, labels, dy, dx


class PerFrameRCCA(nn.Module):
    """2D RCCA on each frame on its own: the control without attention across frames."""

    def __init__(self, rcca: RCCA):
        super().__init__()
        self.rcca = rcca

    def forward(self, clip):
        return per_frame(self.rcca, clip)


def build_model(recurrence: int, per_frame_2d: bool = False) -> nn.ModuleDict:
    torch.manual_seed(0)
    block = VideoRCCAHeadBlock(CHANNELS, out_channels=CHANNELS, inner_channels=CHANNELS, recurrence=recurrence,
                               reduction=2, norm="BN", activation="relu", dropout=0.0, backend="torch")
    if per_frame_2d:
        block.rcca = PerFrameRCCA(RCCA(CHANNELS, recurrence=recurrence, reduction=2, backend="torch"))
    head = CCNetVideoHead({"x": ShapeSpec(channels=CHANNELS, stride=1)}, in_feature="x", rcca_block=block,
                          num_classes=2, aux_in_feature=None, aux_loss_weight=0.0)
    return nn.ModuleDict({"stem": nn.Conv2d(3, CHANNELS, kernel_size=1), "head": head})


def train_and_evaluate(recurrence: int, per_frame_2d: bool = False):
    """Accuracy on the "two" and "three" pixels of the centre frame, and on its pixels within 1 row
    and column of the cue (reachable with R = 1 along the time line)."""
    model = build_model(recurrence, per_frame_2d)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        clips, labels, _, _ = cue_batch(BATCH, generator)
        _, losses = model["head"]({"x": per_frame(model["stem"], clips)}, labels)
        optimizer.zero_grad()
        losses["loss_sem_seg"].backward()
        optimizer.step()
    model.eval()
    clips, labels, dy, dx = cue_batch(512, torch.Generator().manual_seed(2), in_centre_frame=False)
    with torch.no_grad():
        logits, _ = model["head"]({"x": per_frame(model["stem"], clips)})
    correct = logits.argmax(1) == labels

    def accuracy(region):
        return float(correct[region].float().mean())

    far_rows = dy > CONV_REACH
    return (accuracy(far_rows & (dx <= 1)), accuracy(far_rows & (dx > CONV_REACH)),
            accuracy((dy <= 1) & (dx <= 1)))


def test_two_loops_reach_a_cue_in_another_frame_and_row():
    two, three, _ = train_and_evaluate(recurrence=2)
    assert two > 0.9, f"RCCA3d with R=2 should classify pixels whose cue is in another frame and row, got {two:.3f}"
    assert abs(three - 0.5) < 0.1, f"R=2 cannot reach a cue differing in all three coordinates; got {three:.3f}"


def test_one_loop_learns_the_time_line_but_not_two_coordinates():
    two, _, near = train_and_evaluate(recurrence=1)
    assert near > 0.85, f"R=1 should learn the pixels next to the cue's time line, got {near:.3f}"
    assert abs(two - 0.5) < 0.1, f"R=1 cannot reach a cue in another frame and row; accuracy should be chance, got {two:.3f}"


def test_per_frame_2d_attention_never_sees_the_other_frames():
    two, _, near = train_and_evaluate(recurrence=2, per_frame_2d=True)
    assert abs(two - 0.5) < 0.1 and abs(near - 0.5) < 0.1, (two, near)


def test_three_loops_reach_a_cue_differing_in_all_three_coordinates():
    _, three, _ = train_and_evaluate(recurrence=3)
    assert three > 0.9, f"RCCA3d with R=3 should reach every voxel of the clip, got {three:.3f}"
