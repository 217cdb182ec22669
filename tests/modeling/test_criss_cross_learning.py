"""What criss-cross attention is for, as a learning test (the paper's central claim: two loops of
criss-cross attention give every pixel the context of the whole image).

Task: a 12x12 black image holds one cue pixel of colour A or B, anywhere; every pixel's class is the
cue's colour. The model is a 1x1 stem and the real CCNetHead (RCCA + classifier). Its convolutions
reach 3 pixels: reduce, post and bottleneck 3x3 convs. So a pixel more than 3 rows *and* more than 3
columns away from the cue ("far") can only learn the class through attention:

- R = 2: the first loop brings the cue to its row and column, the second to everyone: far pixels
  are classified (almost) perfectly;
- R = 1: only pixels within 3 rows or 3 columns of the cue can see it, so far pixels stay at chance
  (about 50%) while the reachable ones are learnt;
- no attention (the same head with the criss-cross module removed): far pixels stay at chance.
"""
import torch
from torch import nn

from detectron2.layers import ShapeSpec

from ccnet_d2.layers import RCCAHeadBlock
from ccnet_d2.modeling.heads import CCNetHead

SIZE = 12
CONV_REACH = 3  # three 3x3 convs around the attention
CHANNELS = 16
STEPS = 150
BATCH = 32


def cue_batch(n: int, generator: torch.Generator):
    """Images [n, 3, S, S] (channel 0 marks the cue, channel 1 + class its colour), labels [n, S, S]
    and the per-pixel distance from the cue along rows (dy) and columns (dx)."""
    cy, cx = (torch.randint(0, SIZE, (n,), generator=generator) for _ in range(2))
    classes = torch.randint(0, 2, (n,), generator=generator)
    images = torch.zeros(n, 3, SIZE, SIZE)
    index = torch.arange(n)
    images[index, 0, cy, cx] = 1.0
    images[index, 1 + classes, cy, cx] = 1.0
    labels = classes.view(n, 1, 1).expand(n, SIZE, SIZE).clone()
    dy = (torch.arange(SIZE).view(1, SIZE, 1) - cy.view(n, 1, 1)).abs().expand(n, SIZE, SIZE)
    dx = (torch.arange(SIZE).view(1, 1, SIZE) - cx.view(n, 1, 1)).abs().expand(n, SIZE, SIZE)
    return images, labels, dy, dx


def build_model(recurrence: int) -> nn.ModuleDict:
    """Stem + CCNetHead; recurrence 0 = the same head with the criss-cross attention removed."""
    torch.manual_seed(0)
    block = RCCAHeadBlock(CHANNELS, out_channels=CHANNELS, inner_channels=CHANNELS, recurrence=max(recurrence, 1),
                          reduction=2, norm="BN", activation="relu", dropout=0.0, backend="torch")
    if recurrence == 0:
        block.rcca = nn.Identity()
    head = CCNetHead({"x": ShapeSpec(channels=CHANNELS, stride=1)}, in_feature="x", rcca_block=block, num_classes=2,
                     aux_in_feature=None, aux_loss_weight=0.0)
    return nn.ModuleDict({"stem": nn.Conv2d(3, CHANNELS, kernel_size=1), "head": head})


def train_and_evaluate(recurrence: int):
    """Accuracy on far pixels, on pixels within 1 row or column of the cue (reachable at R = 1) and
    within 1 pixel of it (reachable by the convolutions alone)."""
    model = build_model(recurrence)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        images, labels, _, _ = cue_batch(BATCH, generator)
        _, losses = model["head"]({"x": model["stem"](images)}, labels)
        optimizer.zero_grad()
        losses["loss_sem_seg"].backward()
        optimizer.step()
    model.eval()
    images, labels, dy, dx = cue_batch(512, torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits, _ = model["head"]({"x": model["stem"](images)})
    correct = logits.argmax(1) == labels

    def accuracy(region):
        return float(correct[region].float().mean())

    far = (dy > CONV_REACH) & (dx > CONV_REACH)
    return accuracy(far), accuracy((dy <= 1) | (dx <= 1)), accuracy((dy <= 1) & (dx <= 1))


def test_two_loops_reach_pixels_off_the_cues_row_and_column():
    far, cross, local = train_and_evaluate(recurrence=2)
    assert far > 0.9, f"RCCA with R=2 should classify far pixels, got accuracy {far:.3f}"
    assert cross > 0.9 and local > 0.9


def test_one_loop_learns_the_cross_but_not_far_pixels():
    far, cross, _ = train_and_evaluate(recurrence=1)
    assert cross > 0.85, f"R=1 should learn the pixels on the cue's row/column, got {cross:.3f}"
    assert abs(far - 0.5) < 0.1, f"R=1 cannot see far pixels' cue; accuracy should be chance, got {far:.3f}"


def test_without_attention_far_pixels_stay_at_chance():
    far, _, local = train_and_evaluate(recurrence=0)
    assert local > 0.85, f"the convolutions should learn the cue's neighbours, got {local:.3f}"
    assert abs(far - 0.5) < 0.1, f"without attention far pixels should be at chance, got {far:.3f}"
