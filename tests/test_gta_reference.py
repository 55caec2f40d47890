"""GTA against the paper's Eq. 5-8 written out with Python loops, one scalar at a time.

The reference below shares nothing with gta_core/layers/gta.py but the learned
parameters it reads: no einsum, no rearrange, no matmul, no softmax module.
Every index is spelled as the paper spells it (§3.3):

    Y = X + A_P W_P^O + A_R W_R^O                                   (Eq. 5)
    A_P = M̂_P V_P,   A_R = G_Rᵀ (M̂_R V_R),   G_R(t) = W_G X(t)ᵀ       (Eq. 6)
    MH_g = Concat_k (M̂_g^k V_g),   MH_G = Σ_g MH_g,   N_h = G           (Eq. 7-8)

with (M̂ V)[t] = Σ_s M̂[t, s] V[s] (row t of M̂ weighs the input steps for output step t).

Where the paper is silent, the reference takes the choices documented in the
header of gta_core/layers/gta.py (not from its code):
  * G_R is a softmax over the H·W pixels of each region (a region is a weighted mean of pixels);
  * the way back to pixels is G_Rᵀ scaled by H·W/K;
  * V_R = G_R (X W_V^R + b): the value projection per pixel, then pooled;
  * one BatchNorm closes the block: Y = X + BN(A_P W_P^O + A_R W_R^O);
  * the parameter layouts: a single head is one (T, T) M̂; CCMH is (G, N_h = G, T, T) read
    [group g, head k] = M̂_g^k; without CCMH, G groups each have their own M̂_g, (G, T, T)
    (Eq. 7 with one head per group and no Σ_g).
"""
from __future__ import annotations

import math

import pytest
import torch

from gta_core.layers import GlobalTemporalAttention

FRAMES, CHANNELS, HEIGHT, WIDTH, BATCH = 3, 16, 3, 2, 2


def linear(values, weight, bias):
    """A per-pixel projection x W: out[o] = Σ_i weight[o][i] · x[i] (+ bias[o])."""
    return [sum(weight[o][i] * values[i] for i in range(len(values))) + (bias[o] if bias else 0.0)
            for o in range(len(weight))]


def temporal_mix(V, M, layout):
    """A = M̂ V for one sample (a pixel or a region): V[s][c], T steps × C_v channels."""
    T, width = len(V), len(V[0])
    A = [[0.0] * width for _ in range(T)]
    if layout == "single":                                     # Eq. 6: one M̂ ∈ R^{T×T}
        for t in range(T):
            for c in range(width):
                A[t][c] = sum(M[t][s] * V[s][c] for s in range(T))
        return A
    G = len(M)
    group_width = width // G                                    # ⌊C/G⌋
    for k in range(G):                                          # head k of N_h = G heads
        for j in range(group_width):
            for t in range(T):
                if layout == "ccmh":                            # Eq. 7-8: Σ_g M̂_g^k V_g
                    A[t][k * group_width + j] = sum(
                        M[g][k][t][s] * V[s][g * group_width + j] for g in range(G) for s in range(T))
                else:                                           # "groups": head k reads only group k
                    A[t][k * group_width + j] = sum(M[k][t][s] * V[s][k * group_width + j] for s in range(T))
    return A


def reference_gta(block: GlobalTemporalAttention, x: torch.Tensor, layout: str) -> torch.Tensor:
    p = {name: value.detach().double().squeeze(-1).squeeze(-1).tolist() for name, value in block.named_parameters()}
    bn = {name: value.double().tolist() for name, value in block.norm.named_buffers()}
    X = x.double().tolist()                                     # X[b·T + t][c][h][w]
    T, C, HW = FRAMES, CHANNELS, HEIGHT * WIDTH
    pixels = [(h, w) for h in range(HEIGHT) for w in range(WIDTH)]
    update = [[[0.0] * C for _ in range(HW)] for _ in range(BATCH * T)]   # [b·T + t][pixel][c]
    for b in range(BATCH):
        # X(t) ∈ R^{HW×C}: Xt[t][p][c]
        Xt = [[[X[b * T + t][c][h][w] for c in range(C)] for (h, w) in pixels] for t in range(T)]
        if "pixel_matrix" in p:                                 # Pixel GTA: every pixel a sample along T
            for q in range(HW):
                V = [linear(Xt[t][q], p["pixel_value.weight"], p["pixel_value.bias"]) for t in range(T)]
                A = temporal_mix(V, p["pixel_matrix"], layout)
                for t in range(T):
                    out = linear(A[t], p["pixel_out.weight"], None)
                    for c in range(C):
                        update[b * T + t][q][c] += out[c]
        if "region_matrix" in p:                                # Region GTA
            Wg = p["region_assign.weight"]
            K = len(Wg)
            G_R = []                                            # G_R[t][k][q]: a softmax over the pixels q
            for t in range(T):
                logits = [[sum(Wg[k][c] * Xt[t][q][c] for c in range(C)) for q in range(HW)] for k in range(K)]
                G_R.append([[math.exp(v - max(row)) / sum(math.exp(u - max(row)) for u in row) for v in row]
                            for row in logits])
            values = [[linear(Xt[t][q], p["region_value.weight"], p["region_value.bias"]) for q in range(HW)]
                      for t in range(T)]
            width = len(values[0][0])
            # V_R(t) = G_R(t) (X(t) W_V^R): V_R[t][k][c]
            V_R = [[[sum(G_R[t][k][q] * values[t][q][c] for q in range(HW)) for c in range(width)]
                    for k in range(K)] for t in range(T)]
            mixed = [temporal_mix([V_R[t][k] for t in range(T)], p["region_matrix"], layout) for k in range(K)]
            for t in range(T):
                for q in range(HW):
                    # A_R(t) = G_R(t)ᵀ (M̂_R V_R)(t), scaled by HW/K
                    A = [HW / K * sum(G_R[t][k][q] * mixed[k][t][c] for k in range(K)) for c in range(width)]
                    out = linear(A, p["region_out.weight"], None)
                    for c in range(C):
                        update[b * T + t][q][c] += out[c]
    Y = torch.zeros(BATCH * T, C, HEIGHT, WIDTH, dtype=torch.float64)
    for n in range(BATCH * T):
        for q, (h, w) in enumerate(pixels):
            for c in range(C):
                normed = (update[n][q][c] - bn["running_mean"][c]) / math.sqrt(bn["running_var"][c] + block.norm.eps)
                Y[n, c, h, w] = X[n][c][h][w] + normed * p["norm.weight"][c] + p["norm.bias"][c]
    return Y


CASES = {   # name: (pixel, region, cross_channel, groups, layout of M̂)
    "pixel_single_head": (True, False, False, 1, "single"),
    "region_single_head": (False, True, False, 1, "single"),
    "pixel_ccmh": (True, False, True, 2, "ccmh"),
    "region_ccmh": (False, True, True, 4, "ccmh"),
    "both_ccmh": (True, True, True, 2, "ccmh"),
    "both_groups_no_ccmh": (True, True, False, 2, "groups"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gta_matches_the_papers_equations_written_with_loops(case):
    pixel, region, cross_channel, groups, layout = CASES[case]
    torch.manual_seed(3)
    block = GlobalTemporalAttention(CHANNELS, FRAMES, pixel=pixel, region=region, cross_channel=cross_channel,
                                    groups=groups, num_regions=3).eval()
    with torch.no_grad():   # a BatchNorm that is not the identity, so the update is seen whole
        block.norm.weight.uniform_(0.5, 1.5)
        block.norm.bias.uniform_(-0.1, 0.1)
        block.norm.running_mean.uniform_(-0.1, 0.1)
        block.norm.running_var.uniform_(0.5, 2.0)
        x = torch.randn(BATCH * FRAMES, CHANNELS, HEIGHT, WIDTH)
        expected = reference_gta(block, x, layout)
        got = block(x).double()
    assert (expected - x.double()).abs().max() > 0.1          # the block changes its input: a real check
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_ccmh_head_k_of_group_g_is_the_matrix_at_g_k():
    """The layout the reference reads, checked by behaviour: only M̂_g=0^k=1 non-zero moves only head 1's
    channels, and those by group 0's values."""
    block = GlobalTemporalAttention(CHANNELS, FRAMES, region=False, cross_channel=True, groups=2).eval()
    with torch.no_grad():
        block.pixel_matrix.zero_()
        block.pixel_matrix[0, 1] = torch.eye(FRAMES)
        value = torch.randn(BATCH * FRAMES, block.pixel_value.out_channels, 1, 1)
        block.pixel_value = torch.nn.Identity()                 # V = the input itself
        block.pixel_out = torch.nn.Identity()
        block.norm = torch.nn.Identity()
        out = block(value) - value
    half = value.shape[1] // 2
    torch.testing.assert_close(out[:, half:], value[:, :half])  # head 1 = M̂_0^1 V_0 = V_0
    assert out[:, :half].abs().max() == 0
