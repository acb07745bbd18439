#!/usr/bin/env python3
"""Symmetric eigendecomposition fixtures for tests/test_linalg.c, from
numpy.linalg.eigh (LAPACK syevd).  Imports nothing from slimbench.

    python3 tests/reference/make_linalg_fixtures.py     # from the repository root, < 1 s

Writes tests/reference/linalg/: per case NAME.a.f64 [n, n] (the matrix),
NAME.w.f64 [n] (eigenvalues, descending) and NAME.v.f64 [n, n] (row-major,
eigenvector j in column j, in the same order); cases.json lists the cases
with n.  The cases cover what the solver meets in calibration: covariance
matrices X^T X (full rank, rank-deficient with a block of zero eigenvalues,
eigenvalues spread over twelve orders of magnitude), indefinite matrices,
exactly repeated eigenvalues, and matrices that are already diagonal or
tridiagonal (where Householder has nothing to do).
"""
import json
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "linalg")


def with_spectrum(values, rng):
    q, _ = np.linalg.qr(rng.standard_normal((len(values), len(values))))
    return (q * np.asarray(values, dtype=np.float64)) @ q.T


def cases(rng):
    x = rng.standard_normal((100, 64))
    yield "cov64", x.T @ x / 100
    x = rng.standard_normal((10, 30))
    yield "cov30_rank10", x.T @ x
    g = rng.standard_normal((40, 40))
    yield "indefinite40", (g + g.T) / 2
    yield "repeated12", with_spectrum([3, 3, 3, 1, 1, -2, -2, 0.5, 7, 0, 0, 0], rng)
    yield "spread50", with_spectrum(np.logspace(-8, 4, 50), rng)
    yield "diagonal7", np.diag([2.0, -1.0, 5.0, 0.0, 3.0, 3.0, -4.0])
    lap = 2 * np.eye(20) - np.eye(20, k=1) - np.eye(20, k=-1)
    yield "laplacian20", lap
    yield "one", np.array([[-3.5]])
    yield "two", np.array([[1.0, 2.0], [2.0, -1.0]])
    x = rng.standard_normal((300, 200))
    yield "cov200", x.T @ x / 300


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261125)
    listing = []
    for name, a in cases(rng):
        a = np.ascontiguousarray((a + a.T) / 2, dtype=np.float64)
        w, v = np.linalg.eigh(a)
        order = np.argsort(-w, kind="stable")
        w, v = w[order], v[:, order]
        a.tofile(os.path.join(OUT, name + ".a.f64"))
        w.tofile(os.path.join(OUT, name + ".w.f64"))
        np.ascontiguousarray(v).tofile(os.path.join(OUT, name + ".v.f64"))
        listing.append({"name": name, "n": int(a.shape[0])})
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(listing, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
