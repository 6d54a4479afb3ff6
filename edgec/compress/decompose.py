"""Tensor decompositions of a convolution kernel ``K`` (kh, kw, in, out), in NumPy.

- **Tucker-2** over the channel modes: ``K = G x_in U x_out V`` with a core ``G`` (kh, kw, r1, r2), ``U``
  (in x r1) and ``V`` (out x r2) with orthonormal columns. As layers: a 1x1 convolution in -> r1 (``U``), the
  kxk convolution r1 -> r2 (``G``, with the original stride, padding and dilation), a 1x1 r2 -> out
  (``V^T``). Found by HOSVD (the leading singular vectors of each channel unfolding), then refined by
  higher-order orthogonal iteration (HOOI), which alternates the two.
- **CP** of rank R: ``K[y, x, i, o] = sum_r A[y, r] B[x, r] C[i, r] D[o, r]``. As layers: a 1x1 in -> R
  (``C``), a depthwise kh x 1 (``A``), a depthwise 1 x kw (``B``), a 1x1 R -> out (``D``). Found by
  alternating least squares from an SVD start; the relative error is returned, since CP-ALS may stop short.
"""

from __future__ import annotations

import math

import numpy as np


def _unfold(t: np.ndarray, mode: int) -> np.ndarray:
    return np.moveaxis(t, mode, 0).reshape(t.shape[mode], -1)


def _leading(m: np.ndarray, r: int) -> np.ndarray:
    u, _, _ = np.linalg.svd(m, full_matrices=False)
    return u[:, :r]


def channel_spectra(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Singular values of the input-channel and output-channel unfoldings (what the Tucker ranks cut)."""
    k = kernel.astype(np.float64)
    return (np.linalg.svd(_unfold(k, 2), compute_uv=False), np.linalg.svd(_unfold(k, 3), compute_uv=False))


def tucker2(kernel: np.ndarray, r1: int, r2: int, iterations: int = 5):
    """``(core, U, V, relative error)`` of the Tucker-2 decomposition of ``kernel`` (kh, kw, in, out) with
    ranks ``r1`` (input) and ``r2`` (output)."""
    k = kernel.astype(np.float64)
    u = _leading(_unfold(k, 2), r1)
    v = _leading(_unfold(k, 3), r2)
    for _ in range(iterations):  # HOOI: each factor from the kernel projected on the other
        u = _leading(_unfold(np.einsum("yxio,or->yxir", k, v), 2), r1)
        v = _leading(_unfold(np.einsum("yxio,ir->yxro", k, u), 3), r2)
    core = np.einsum("yxio,ir,os->yxrs", k, u, v)
    approx = np.einsum("yxrs,ir,os->yxio", core, u, v)
    return core, u, v, _relative(approx, k)


def cp(kernel: np.ndarray, rank: int, iterations: int = 500, tol: float = 1e-12, seed: int = 0):
    """``(A, B, C, D, relative error)``: the rank-``rank`` CP decomposition of ``kernel`` (kh, kw, in, out)
    by alternating least squares, started from each mode's leading singular vectors (random columns where a
    mode has fewer than ``rank``)."""
    k = kernel.astype(np.float64)
    rng = np.random.default_rng(seed)
    factors = []
    for mode in range(4):
        u = _leading(_unfold(k, mode), rank)
        if u.shape[1] < rank:
            u = np.concatenate([u, rng.normal(size=(k.shape[mode], rank - u.shape[1]))], axis=1)
        factors.append(u)
    previous = math.inf
    error = math.inf
    for _ in range(iterations):
        for mode in range(4):
            others = [factors[m] for m in range(4) if m != mode]
            # the Khatri-Rao product of the other factors, in the unfolding's column order
            kr = others[0]
            for f in others[1:]:
                kr = (kr[:, None, :] * f[None, :, :]).reshape(-1, rank)
            gram = np.ones((rank, rank))
            for f in others:
                gram *= f.T @ f
            factors[mode] = np.linalg.solve(gram.T + 1e-14 * np.eye(rank), (_unfold(k, mode) @ kr).T).T
        error = _relative(np.einsum("yr,xr,ir,or->yxio", *factors), k)
        if previous - error < tol:
            break
        previous = error
    a, b, c, d = factors
    return a, b, c, d, error


def _relative(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.linalg.norm(approx - exact)) / max(float(np.linalg.norm(exact)), 1e-30)
