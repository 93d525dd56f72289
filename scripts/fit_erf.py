#!/usr/bin/env python3
"""Fit the rational approximation of erf that `erf_f32` in
src/runtime/kernels/gelu.rs evaluates, and measure its error in f32.

    erf(x) ~= x P(x^2) / Q(x^2)  on 0 <= x <= 4,  Q(0) = 1

(erf is odd, and beyond 4 it rounds to 1 in f32). The fit is a weighted
linear least-squares of P(t) - (erf(x) / x) Q(t) = 0, reweighted toward
the points of largest error (Lawson's iteration), so it approaches the
minimax fit. The coefficients are then rounded to f32 and the function is
evaluated exactly as the kernel does (Horner's rule in fused
multiply-adds, each rounded once to f32) against math.erf on a dense grid.

    /work/pyref/bin/python scripts/fit_erf.py [DEG_P] [DEG_Q]   # 5 5
"""
import sys
from math import erf

import numpy as np

F32 = np.float32
LIMIT = 4.0


def fit(dp, dq):
    x = np.linspace(1e-4, LIMIT, 40000)
    f = np.array([erf(v) for v in x])
    t = x * x
    g = f / x
    # P's constant is erf'(0) = 2 / sqrt(pi), exactly (the kernel writes
    # it as FRAC_2_SQRT_PI); the rest solves
    # sum p_i t^i - g sum q_j t^j = g - p_0 (i, j >= 1).
    p0 = 2.0 / np.sqrt(np.pi)
    w = np.ones_like(x)
    for _ in range(60):
        a = np.hstack(
            [
                np.vander(t, dp + 1, increasing=True)[:, 1:],
                -g[:, None] * np.vander(t, dq + 1, increasing=True)[:, 1:],
            ]
        )
        weight = w * x  # the error of x P / Q, not of P / Q
        coef, *_ = np.linalg.lstsq(a * weight[:, None], (g - p0) * weight, rcond=None)
        p = np.concatenate([[p0], coef[:dp]])
        q = np.concatenate([[1.0], coef[dp:]])
        err = x * np.polyval(p[::-1], t) / np.polyval(q[::-1], t) - f
        w = w * (np.abs(err) / np.abs(err).max() + 1e-3) ** 0.5
        w /= w.mean()
    return p.astype(F32), q.astype(F32)


def fma(a, b, c):
    # Products of two f32 are exact in f64: one rounding, as an FMA.
    return (a.astype(np.float64) * b.astype(np.float64) + c).astype(F32)


def horner(coefs, t):
    acc = np.full_like(t, coefs[-1])
    for c in coefs[-2::-1]:
        acc = fma(t, acc, np.float64(c))
    return acc


def erf_f32(x, p, q):
    a = np.minimum(np.abs(x), F32(LIMIT))
    t = (a * a).astype(F32)
    y = ((a * horner(p, t)).astype(F32) / horner(q, t)).astype(F32)
    return np.copysign(np.minimum(y, F32(1.0)), x)


def main():
    dp = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    dq = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    p, q = fit(dp, dq)
    x = np.linspace(0, 6, 600001).astype(F32)
    ref = np.array([erf(float(v)) for v in x])
    err = np.abs(erf_f32(x, p, q).astype(np.float64) - ref)
    small = (x > 0) & (x < 1)
    print(f"max |error| in f32: {err.max():.3e} at x = {x[err.argmax()]}")
    print(f"max relative error below 1: {(err[small] / ref[small]).max():.3e}")
    print("const ERF_P: [f32; %d] = [%s];" % (dp + 1, ", ".join(str(c) for c in p)))
    print("const ERF_Q: [f32; %d] = [%s];" % (dq + 1, ", ".join(str(c) for c in q)))


if __name__ == "__main__":
    main()
