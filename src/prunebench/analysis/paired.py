"""Paired comparisons on shared examples: the error increase Delta = err(pruned) - err(parent) with an interval.

Every model of a study is evaluated on the same ordered examples (:mod:`prunebench.analysis.outcomes`),
so the comparison is paired: per example i and repetition r the difference d_ri = wrong(pruned_r, i) -
wrong(parent_r, i) (averaged over the k noise draws of an image), and Delta = mean_r mean_i d_ri.
Pairing removes the examples that both models get right or both get wrong from the noise: the
uncertainty is set by the *discordant* examples, not by the accuracy (McNemar's observation).

The interval comes from one joint bootstrap for the whole study (:class:`Resampler`):

* **examples**: every test image gets a Poisson(1) weight per replicate (the Poisson bootstrap,
  Hanley & MacGibbon 2006, a large-n equivalent of resampling with replacement). The weights are
  per *image index*, shared by every model and every distribution built on that image, so
  statistics computed from several comparisons at once (a prune potential over ratios, the
  difference between two methods, a slope) see one coherent resample;
* **pseudo-counts**: half a discordant example each way (weight 0.5, also resampled), as in
  Agresti & Min (2005)'s adjusted interval for matched proportions: without it, a model compared
  with itself on 20 examples would get the zero-width interval [0, 0] and a false "confidently within";
* **repetitions** (independently trained parents and their pruned models): the per-repetition
  deviations Delta_r - Delta are resampled with multinomial counts (shared by all models, since
  repetition r of every method starts from parent r). A spread between repetitions partly *is*
  example noise already counted above, so the deviations are shrunk to the seed-level part only:
  sigma_a^2 = max(0, s_between^2 - sigma_within^2 / n) (method of moments for a two-way layout),
  scaled by sqrt(R / (R - 1)) to undo the bootstrap's (R - 1) / R variance bias.

Percentile interval at the stated level (default 95%). With few repetitions the seed-level variance
is itself uncertain; the interval then mostly reflects the examples (documented in docs/STUDY.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from prunebench.errors import UserError

CONFIDENCE = 0.95
N_BOOT = 1000
PSEUDO = 0.5  # discordant pseudo-examples each way (Agresti & Min 2005)
TOL = 1e-12  # floating-point slack: a hand-exact tie with delta counts as within

WITHIN, BEYOND, INCONCLUSIVE = "within", "beyond", "inconclusive"


def check_confidence(level: float) -> float:
    """The confidence level as a float in (0, 1), else a one-line UserError."""
    try:
        lv = float(level)
    except (TypeError, ValueError):
        raise UserError(f"confidence must be a number in (0, 1), e.g. 0.95; got {level!r}") from None
    if not (0.0 < lv < 1.0) or not math.isfinite(lv):
        raise UserError(f"confidence must be in (0, 1), e.g. 0.95 for 95%; got {level!r}")
    return lv


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided percentile interval at confidence ``level``."""

    estimate: float
    low: float
    high: float
    level: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def verdict(self, delta: float) -> str:
        """``within`` (the whole interval <= delta), ``beyond`` (the whole interval > delta), else ``inconclusive``."""
        if self.high <= delta + TOL:
            return WITHIN
        if self.low > delta + TOL:
            return BEYOND
        return INCONCLUSIVE

    @classmethod
    def from_samples(cls, estimate: float, samples: np.ndarray, level: float) -> Interval:
        lo, hi = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
        return cls(float(estimate), float(min(lo, estimate)), float(max(hi, estimate)), level)


class Resampler:
    """The bootstrap replicates of one study: weights per test image, per pseudo-example and per repetition."""

    def __init__(self, n_images: int, n_reps: int, n_boot: int = N_BOOT, seed: int = 0) -> None:
        if n_boot < 1:
            raise UserError(f"the bootstrap needs at least one resample, got {n_boot}")
        rng = np.random.default_rng(seed)
        self.n_boot, self.n_reps = int(n_boot), max(int(n_reps), 1)
        self.image_w = rng.poisson(1.0, size=(n_boot, max(int(n_images), 1))).astype(np.float64)
        self.pseudo_w = rng.poisson(1.0, size=(n_boot, 2)).astype(np.float64)
        self.rep_w = rng.multinomial(self.n_reps, [1.0 / self.n_reps] * self.n_reps, size=n_boot).astype(np.float64)

    def deltas(self, diffs: np.ndarray, present: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Point estimates (M,) and bootstrap replicates (M, B) of Delta for M comparisons at once.

        ``diffs`` (M, R, n): per comparison, repetition and example, wrong(pruned) - wrong(parent),
        already averaged over draws; ``present`` (M, R) marks the repetitions that exist (a failed cell
        leaves a hole; its row of ``diffs`` is ignored).
        """
        d = np.asarray(diffs, dtype=np.float64)
        m, r, n = d.shape
        if n > self.image_w.shape[1] or r > self.n_reps:
            raise ValueError(f"resampler made for {self.image_w.shape[1]} images x {self.n_reps} reps, got {n} x {r}")
        pres = np.ones((m, r), bool) if present is None else np.asarray(present, bool)
        cnt = pres.sum(1)
        if (cnt == 0).any():
            raise ValueError("every comparison needs at least one repetition")
        d = np.where(pres[:, :, None], d, 0.0)
        per_rep = d.mean(2)  # (M, R): Delta_r
        point = per_rep.sum(1) / cnt
        dbar = d.sum(1) / cnt[:, None]  # (M, n): mean over present repetitions
        w = self.image_w[:, :n]
        pseudo = (PSEUDO / cnt)[:, None]  # half a discordant example per repetition's worth of data, each way
        num = dbar @ w.T + pseudo * (self.pseudo_w[:, 0] - self.pseudo_w[:, 1])[None, :]
        den = w.sum(1)[None, :] + pseudo * self.pseudo_w.sum(1)[None, :]
        boot = num / den
        multi = cnt > 1
        if multi.any():
            u = np.where(pres, per_rep - point[:, None], 0.0)  # (M, R) deviations of each repetition
            s2_between = (u ** 2).sum(1) / np.maximum(cnt - 1, 1)
            resid = np.where(pres[:, :, None], d - dbar[:, None, :] - u[:, :, None], 0.0)
            s2_within = (resid ** 2).sum((1, 2)) / np.maximum((cnt - 1) * max(n - 1, 1), 1)
            s2_seed = np.maximum(s2_between - s2_within / n, 0.0)
            shrink = np.sqrt(np.divide(s2_seed, s2_between, out=np.zeros_like(s2_seed), where=s2_between > 0))
            scale = np.where(multi, shrink * np.sqrt(cnt / np.maximum(cnt - 1, 1)), 0.0)
            vw = self.rep_w[:, :r]  # (B, R)
            tot = pres.astype(np.float64) @ vw.T  # (M, B): resampled weight on present repetitions
            rep_mean = np.divide(u @ vw.T, tot, out=np.zeros_like(tot), where=tot > 0)
            boot = boot + scale[:, None] * rep_mean
        return point, boot


def wrong_diff(pruned_correct: np.ndarray, parent_correct: np.ndarray) -> np.ndarray:
    """Per example: wrong(pruned) - wrong(parent), averaged over draws; arrays (n,) or (n, k) of booleans."""
    q = np.asarray(pruned_correct, bool).reshape(len(pruned_correct), -1)
    p = np.asarray(parent_correct, bool).reshape(len(parent_correct), -1)
    if q.shape != p.shape:
        raise ValueError(f"outcomes of different shapes {q.shape} vs {p.shape}: not the same examples")
    return (p.astype(np.float64) - q.astype(np.float64)).mean(1)


def paired_interval(pruned_correct: np.ndarray, parent_correct: np.ndarray, *, level: float = CONFIDENCE,
                    n_boot: int = N_BOOT, seed: int = 0) -> Interval:
    """Delta with its interval for one pruned model against its parent (one repetition)."""
    d = wrong_diff(pruned_correct, parent_correct)
    point, boot = Resampler(len(d), 1, n_boot, seed).deltas(d[None, None, :])
    return Interval.from_samples(point[0], boot[0], check_confidence(level))


__all__ = ["BEYOND", "CONFIDENCE", "INCONCLUSIVE", "Interval", "N_BOOT", "Resampler", "WITHIN", "check_confidence",
           "paired_interval", "wrong_diff"]
