"""Triton programs of the fused criss-cross attention (launched by ``fused_op.py``).

Every program solves one direction of the cross as small dense attention problems: a *line* is a
row (length W, the pixel itself included) or a column (length H, ``EXCLUDE_SELF`` masks the pixel
itself). A pixel of line ``l`` at position ``i`` sits at offset ``l * line_stride + i * pos_stride``
of an [H, W] plane (row: W and 1; column: 1 and W), so one program serves both directions.
Tensors are contiguous [B, channels, H, W]; the log-sum-exp and D are contiguous [B, H, W] float32.

The row pass writes its partial result (``MERGE``/``ACCUMULATE`` off) into a float32 buffer; the
column pass reads it back, merges or adds its own part and writes the final tensor. Each element is
written by exactly one program of each pass, so results are deterministic (no atomics).
"""
import triton
import triton.language as tl


@triton.jit
def _load_tile(base, pixels, pixel_mask, channels, channel_mask, plane):
    """[pixels, channels] tile of a [channels, H, W] tensor, zero outside the masks."""
    return tl.load(base + channels[None, :] * plane + pixels[:, None],
                   mask=pixel_mask[:, None] & channel_mask[None, :], other=0.0)


@triton.jit
def _channel_products(x_base, x_pixels, x_mask, y_base, y_pixels, y_mask, plane, channels,
                      BLOCK_A: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr,
                      PRECISION: tl.constexpr):
    """[A, B] float32 sums over all channels of x[c, a] * y[c, b] (energies, dP), BLOCK_K at a time."""
    acc = tl.zeros([BLOCK_A, BLOCK_B], dtype=tl.float32)
    for start in range(0, channels, BLOCK_K):
        offs = start + tl.arange(0, BLOCK_K)
        in_range = offs < channels
        x = _load_tile(x_base, x_pixels, x_mask, offs, in_range, plane)
        y = tl.trans(_load_tile(y_base, y_pixels, y_mask, offs, in_range, plane))
        acc += tl.dot(x, y, input_precision=PRECISION)
    return acc


@triton.jit
def _cross_mask(offs_query, offs_key, length, EXCLUDE_SELF: tl.constexpr):
    """[queries, keys] positions that take part in the softmax: keys inside the line, and in a
    column not the query pixel itself."""
    valid = (offs_query[:, None] < length) & (offs_key[None, :] < length)
    if EXCLUDE_SELF:
        valid = valid & (offs_query[:, None] != offs_key[None, :])
    return valid


@triton.jit
def _positions(line, start, length, line_stride, pos_stride, BLOCK: tl.constexpr):
    """(positions, mask, pixel offsets) of the BLOCK positions of `line` from `start`."""
    offs = start + tl.arange(0, BLOCK)
    return offs, offs < length, line * line_stride + offs * pos_stride


@triton.jit
def _line_block(pid, length, num_lines, line_stride, pos_stride, BLOCK: tl.constexpr):
    """(batch, line, positions, position mask, pixel offsets) of the block `pid` of lines."""
    blocks = tl.cdiv(length, BLOCK)
    line = pid // blocks
    batch = line // num_lines
    line = line % num_lines
    offs, mask, pixels = _positions(line, (pid % blocks) * BLOCK, length, line_stride, pos_stride, BLOCK)
    return batch, line, offs, mask, pixels


@triton.jit
def _batch_bases(q_ptr, k_ptr, v_ptr, batch, plane, cq, c):
    """Pointers to query, key and value of one batch element."""
    return q_ptr + batch * cq * plane, k_ptr + batch * cq * plane, v_ptr + batch * c * plane


@triton.jit
def cross_forward_kernel(q_ptr, k_ptr, v_ptr, partial_ptr, partial_lse_ptr, out_ptr, lse_ptr,
                         plane, length, num_lines, line_stride, pos_stride, cq, c,
                         EXCLUDE_SELF: tl.constexpr, MERGE: tl.constexpr,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_CQ: tl.constexpr,
                         BLOCK_C: tl.constexpr, PRECISION: tl.constexpr):
    """Attention of BLOCK_M queries of one line over that line, for BLOCK_C value channels, with an
    online softmax over key blocks. Without MERGE: partial = softmax-weighted values, lse = their
    log-sum-exp (partial_lse). With MERGE: the line's part is merged with partial/partial_lse through
    the log-sum-exp into out/lse (separate buffers: other channel blocks still read partial_lse)."""
    batch, line, offs_m, mask_m, pix_m = _line_block(tl.program_id(0), length, num_lines, line_stride,
                                                    pos_stride, BLOCK_M)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < c
    q_base, k_base, v_base = _batch_bases(q_ptr, k_ptr, v_ptr, batch, plane, cq, c)
    row_max = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    row_sum = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_C], dtype=tl.float32)
    for start_n in range(0, length, BLOCK_N):
        offs_n, mask_n, pix_n = _positions(line, start_n, length, line_stride, pos_stride, BLOCK_N)
        s = _channel_products(q_base, pix_m, mask_m, k_base, pix_n, mask_n, plane, cq,
                              BLOCK_M, BLOCK_N, BLOCK_CQ, PRECISION)
        s = tl.where(_cross_mask(offs_m, offs_n, length, EXCLUDE_SELF), s, float("-inf"))
        new_max = tl.maximum(row_max, tl.max(s, axis=1))
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)  # a query with no key yet
        p = tl.exp(s - shift[:, None])
        scale = tl.exp(row_max - shift)
        row_sum = row_sum * scale + tl.sum(p, axis=1)
        v = _load_tile(v_base, pix_n, mask_n, offs_c, mask_c, plane)
        acc = acc * scale[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
        row_max = new_max
    tile = batch * c * plane + offs_c[None, :] * plane + pix_m[:, None]
    tile_mask = mask_m[:, None] & mask_c[None, :]
    pixel = batch * plane + pix_m
    has_keys = row_sum > 0.0
    line_lse = tl.where(has_keys, row_max + tl.log(tl.where(has_keys, row_sum, 1.0)), float("-inf"))
    if MERGE:
        previous_lse = tl.load(partial_lse_ptr + pixel, mask=mask_m, other=0.0)
        lse = tl.maximum(previous_lse, line_lse)
        lse = lse + tl.log(tl.exp(previous_lse - lse) + tl.exp(line_lse - lse))
        previous = tl.load(partial_ptr + tile, mask=tile_mask, other=0.0)
        line_weight = tl.exp(tl.where(has_keys, row_max, lse) - lse) * has_keys.to(tl.float32)
        result = previous * tl.exp(previous_lse - lse)[:, None] + acc * line_weight[:, None]
        tl.store(out_ptr + tile, result.to(out_ptr.dtype.element_ty), mask=tile_mask)
        if tl.program_id(1) == 0:
            tl.store(lse_ptr + pixel, lse, mask=mask_m)
    else:
        result = acc / tl.where(has_keys, row_sum, 1.0)[:, None]
        tl.store(partial_ptr + tile, result, mask=tile_mask)
        if tl.program_id(1) == 0:
            tl.store(partial_lse_ptr + pixel, line_lse, mask=mask_m)


@triton.jit
def channel_dot_kernel(x_ptr, y_ptr, delta_ptr, plane, c, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """delta[b, pixel] = sum_c x[b, c, pixel] * y[b, c, pixel] in float32 (D = rowsum(dO * O))."""
    batch = tl.program_id(1)
    offs_p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    mask_p = offs_p < plane
    acc = tl.zeros([BLOCK_P], dtype=tl.float32)
    for start in range(0, c, BLOCK_C):
        offs_c = start + tl.arange(0, BLOCK_C)
        mask_c = offs_c < c
        x = _load_tile(x_ptr + batch * c * plane, offs_p, mask_p, offs_c, mask_c, plane)
        y = _load_tile(y_ptr + batch * c * plane, offs_p, mask_p, offs_c, mask_c, plane)
        acc += tl.sum(x.to(tl.float32) * y.to(tl.float32), axis=1)
    tl.store(delta_ptr + batch * plane + offs_p, acc, mask=mask_p)


@triton.jit
def cross_grad_query_kernel(q_ptr, k_ptr, v_ptr, grad_out_ptr, lse_ptr, delta_ptr, partial_ptr, out_ptr,
                            plane, length, num_lines, line_stride, pos_stride, cq, c,
                            EXCLUDE_SELF: tl.constexpr, ACCUMULATE: tl.constexpr,
                            BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_CQ: tl.constexpr,
                            BLOCK_C: tl.constexpr, BLOCK_OUT: tl.constexpr, PRECISION: tl.constexpr):
    """dQ of BLOCK_M queries of one line, for BLOCK_OUT query channels, from this line's keys:
    dQ = sum_n dS K with dS = P (dP - D), P = exp(S - lse), dP = dO . V (BLOCK_CQ and BLOCK_C are
    the chunks of the channel sums)."""
    batch, line, offs_m, mask_m, pix_m = _line_block(tl.program_id(0), length, num_lines, line_stride,
                                                    pos_stride, BLOCK_M)
    offs_k = tl.program_id(1) * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
    mask_k = offs_k < cq
    q_base, k_base, v_base = _batch_bases(q_ptr, k_ptr, v_ptr, batch, plane, cq, c)
    do_base = grad_out_ptr + batch * c * plane
    lse = tl.load(lse_ptr + batch * plane + pix_m, mask=mask_m, other=0.0)
    delta = tl.load(delta_ptr + batch * plane + pix_m, mask=mask_m, other=0.0)
    acc = tl.zeros([BLOCK_M, BLOCK_OUT], dtype=tl.float32)
    for start_n in range(0, length, BLOCK_N):
        offs_n, mask_n, pix_n = _positions(line, start_n, length, line_stride, pos_stride, BLOCK_N)
        s = _channel_products(q_base, pix_m, mask_m, k_base, pix_n, mask_n, plane, cq,
                              BLOCK_M, BLOCK_N, BLOCK_CQ, PRECISION)
        p = tl.where(_cross_mask(offs_m, offs_n, length, EXCLUDE_SELF), tl.exp(s - lse[:, None]), 0.0)
        dp = _channel_products(do_base, pix_m, mask_m, v_base, pix_n, mask_n, plane, c,
                               BLOCK_M, BLOCK_N, BLOCK_C, PRECISION)
        ds = p * (dp - delta[:, None])
        k = _load_tile(k_base, pix_n, mask_n, offs_k, mask_k, plane)
        acc += tl.dot(ds.to(k.dtype), k, input_precision=PRECISION)
    _store_gradient(acc, partial_ptr, out_ptr, batch * cq * plane, offs_k, mask_k, pix_m, mask_m, plane, ACCUMULATE)


@triton.jit
def cross_grad_key_value_kernel(q_ptr, k_ptr, v_ptr, grad_out_ptr, lse_ptr, delta_ptr, partial_ptr, out_ptr,
                                plane, length, num_lines, line_stride, pos_stride, cq, c,
                                EXCLUDE_SELF: tl.constexpr, ACCUMULATE: tl.constexpr, GRAD_VALUE: tl.constexpr,
                                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_CQ: tl.constexpr,
                                BLOCK_C: tl.constexpr, BLOCK_OUT: tl.constexpr, PRECISION: tl.constexpr):
    """dK or, with GRAD_VALUE, dV of BLOCK_N keys of one line for BLOCK_OUT channels, from this
    line's queries: dV = sum_m P^T dO, dK = sum_m dS^T Q."""
    batch, line, offs_n, mask_n, pix_n = _line_block(tl.program_id(0), length, num_lines, line_stride,
                                                    pos_stride, BLOCK_N)
    q_base, k_base, v_base = _batch_bases(q_ptr, k_ptr, v_ptr, batch, plane, cq, c)
    do_base = grad_out_ptr + batch * c * plane
    channels = c if GRAD_VALUE else cq
    offs_out = tl.program_id(1) * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
    mask_out = offs_out < channels
    acc = tl.zeros([BLOCK_N, BLOCK_OUT], dtype=tl.float32)
    for start_m in range(0, length, BLOCK_M):
        offs_m, mask_m, pix_m = _positions(line, start_m, length, line_stride, pos_stride, BLOCK_M)
        lse = tl.load(lse_ptr + batch * plane + pix_m, mask=mask_m, other=0.0)
        s_t = _channel_products(k_base, pix_n, mask_n, q_base, pix_m, mask_m, plane, cq,
                                BLOCK_N, BLOCK_M, BLOCK_CQ, PRECISION)
        p_t = tl.where(_cross_mask(offs_n, offs_m, length, EXCLUDE_SELF), tl.exp(s_t - lse[None, :]), 0.0)
        if GRAD_VALUE:
            do = _load_tile(do_base, pix_m, mask_m, offs_out, mask_out, plane)
            acc += tl.dot(p_t.to(do.dtype), do, input_precision=PRECISION)
        else:
            delta = tl.load(delta_ptr + batch * plane + pix_m, mask=mask_m, other=0.0)
            dp_t = _channel_products(v_base, pix_n, mask_n, do_base, pix_m, mask_m, plane, c,
                                     BLOCK_N, BLOCK_M, BLOCK_C, PRECISION)
            ds_t = p_t * (dp_t - delta[None, :])
            q = _load_tile(q_base, pix_m, mask_m, offs_out, mask_out, plane)
            acc += tl.dot(ds_t.to(q.dtype), q, input_precision=PRECISION)
    _store_gradient(acc, partial_ptr, out_ptr, batch * channels * plane, offs_out, mask_out, pix_n, mask_n, plane,
                    ACCUMULATE)


@triton.jit
def _store_gradient(acc, partial_ptr, out_ptr, batch_offset, offs_c, mask_c, pixels, pixel_mask, plane,
                    ACCUMULATE: tl.constexpr):
    """Row pass: store the float32 partial gradient. Column pass: add it and store the result."""
    tile = batch_offset + offs_c[None, :] * plane + pixels[:, None]
    tile_mask = pixel_mask[:, None] & mask_c[None, :]
    if ACCUMULATE:
        total = tl.load(partial_ptr + tile, mask=tile_mask, other=0.0) + acc
        tl.store(out_ptr + tile, total.to(out_ptr.dtype.element_ty), mask=tile_mask)
    else:
        tl.store(partial_ptr + tile, acc, mask=tile_mask)
