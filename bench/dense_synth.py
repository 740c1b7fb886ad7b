"""768-d vectors with a realistic structure, synthesised from real MiniLM embeddings.

No 768-d encoder is available offline (the packaged MiniLM makes 384-d vectors), and encoding
millions of passages on 2 cores would take days, so the vectors are made from real ones:

- base (384-d): a mix of three real MiniLM passage vectors (HotpotQA paragraphs, thousands of
  them), weights drawn from a flat Dirichlet, renormalised, plus Gaussian noise. With 6,000 real
  passages there are ~3.6e10 triples and continuous weights, so millions of vectors are
  distinct points spread over the real embedding manifold, not near-copies of a few points;
- lift (768-d): the base, followed by a 384-d tail that is a fixed non-linear function of it
  (``tanh`` of a random projection) scaled by a decaying spectrum (sigma_j ~ j^-0.7: the
  anisotropy of real embedding spectra), plus small noise, then rotated by a fixed random
  orthogonal 768 x 768 map so no coordinate is special, and normalised (cosine = inner product);
- queries: real MiniLM vectors of real HotpotQA questions, lifted by the same map (no noise).

Everything is seeded: the same n gives the same vectors.
"""

from __future__ import annotations

import numpy as np

D_IN, D_OUT = 384, 768
BASE_NOISE = 0.015  # per dimension: |noise| ~ 0.29 against a unit base
LIFT_NOISE = 0.004  # per dimension of the 768-d vector
TAIL_ENERGY = 0.5  # squared norm of the tail against the unit base


class Lift:
    """The fixed map from 384-d MiniLM space to the synthetic 768-d space."""

    def __init__(self, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.w = (rng.normal(size=(D_IN, D_IN)) * np.sqrt(1.0 / D_IN) * 20).astype(np.float32)
        sigma = np.arange(1, D_IN + 1, dtype=np.float64) ** -0.7
        expected = (sigma**2).sum() * 0.39  # E[tanh(z)^2] for z ~ N(0, 1) is about 0.39
        self.sigma = (sigma * np.sqrt(TAIL_ENERGY / expected)).astype(np.float32)
        q, r = np.linalg.qr(rng.normal(size=(D_OUT, D_OUT)))
        self.rotation = (q * np.sign(np.diag(r))).astype(np.float32)

    def __call__(self, base: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        base = base / np.linalg.norm(base, axis=1, keepdims=True)
        tail = np.tanh(base @ self.w) * self.sigma
        lifted = np.concatenate([base, tail], axis=1).astype(np.float32)
        if rng is not None:
            lifted += rng.normal(0, LIFT_NOISE, lifted.shape).astype(np.float32)
        out = lifted @ self.rotation
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out.astype(np.float32)


def passage_block(real: np.ndarray, lift: Lift, rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` synthetic 768-d passage vectors (float32, unit norm)."""
    picks = rng.integers(0, len(real), (count, 3))
    weights = rng.dirichlet(np.ones(3), count).astype(np.float32)
    base = np.einsum("nk,nkd->nd", weights, real[picks])
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    base += rng.normal(0, BASE_NOISE, base.shape).astype(np.float32)
    return lift(base, rng)
