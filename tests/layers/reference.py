"""An independent, deliberately slow criss-cross attention written straight from the paper's
definition: for pixel u, the keys are u's row (W pixels, u included) and u's column without u (H-1
pixels); one softmax over those H+W-1 plain dot products; the output is the weighted sum of values."""
import torch


def cross_positions(h, w, y, x):
    """The H+W-1 positions attended by pixel (y, x), in the documented order (row, then column without self)."""
    return [(y, j) for j in range(w)] + [(i, x) for i in range(h) if i != y]


def loop_criss_cross(query, key, value):
    """Returns (output [B, C, H, W], weights [B, H+W-1, H, W]) in float64."""
    q, k, v = query.double(), key.double(), value.double()
    b, _, h, w = q.shape
    out = torch.zeros(b, v.shape[1], h, w, dtype=torch.float64)
    weights = torch.zeros(b, h + w - 1, h, w, dtype=torch.float64)
    for n in range(b):
        for y in range(h):
            for x in range(w):
                pos = cross_positions(h, w, y, x)
                energies = torch.stack([torch.dot(q[n, :, y, x], k[n, :, i, j]) for i, j in pos])
                a = torch.exp(energies - energies.max())
                a = a / a.sum()
                weights[n, :, y, x] = a
                for p, (i, j) in enumerate(pos):
                    out[n, :, y, x] += a[p] * v[n, :, i, j]
    return out, weights


def cross_positions_3d(t, h, w, f, y, x):
    """The T+H+W-2 positions attended by voxel (f, y, x): its row (voxel included), its column without
    it, then its time line (the same pixel in the other frames)."""
    return ([(f, y, j) for j in range(w)] + [(f, i, x) for i in range(h) if i != y]
            + [(s, y, x) for s in range(t) if s != f])


def loop_criss_cross_3d(query, key, value):
    """3D criss-cross attention from the definition, voxel by voxel; returns the output in float64."""
    q, k, v = query.double(), key.double(), value.double()
    b, _, t, h, w = q.shape
    out = torch.zeros(b, v.shape[1], t, h, w, dtype=torch.float64)
    for n in range(b):
        for f in range(t):
            for y in range(h):
                for x in range(w):
                    pos = cross_positions_3d(t, h, w, f, y, x)
                    energies = torch.stack([torch.dot(q[n, :, f, y, x], k[n, :, s, i, j]) for s, i, j in pos])
                    a = torch.softmax(energies, dim=0)
                    out[n, :, f, y, x] = sum(a[p] * v[n, :, s, i, j] for p, (s, i, j) in enumerate(pos))
    return out
