"""The conditional-mean sharing rule (Denuit and Dhaene 2012): member i pays ``(1 + fee) E[X_i | S]``, exactly.

Members are grouped into classes of identical risks: class k has ``N_k`` members, each
with claim probability / rate ``p_k`` per sharing period and a fixed benefit ``B_k``;
``S = sum_i X_i`` with ``X_i = B_i M_i``.

Notes
-----
Poisson counts (M_i ~ Poisson(p_i)): the size-bias identity
``E[M g(M)] = p E[g(M + 1)]`` gives ``E[X_i 1{S = s}] = p_i B_i P(S = s - B_i)``, so

    E[X_i | S = s] = p_i B_i P(S = s - B_i) / P(S = s),

and S is compound Poisson with Poisson parameter ``sum_k N_k p_k``. On the lattice
of the benefits' greatest common divisor u (b_k = B_k / u integers) its law follows
the Panjer recursion ``s f(s) = sum_k N_k p_k b_k f(s - b_k)``, ``f(0) = exp(-sum N_k p_k)``,
run with rescaling so that large pools do not underflow.

Bernoulli counts (M_i in {0, 1}): ``E[X_i 1{S = s}] = p_i B_i P(S_{-i} = s - B_i)``
where ``S_{-i}`` is S without member i: class k with ``N_k - 1`` members. Each
class contributes ``b_k Binomial(N_k, p_k)``; the laws are convolved exactly
(prefix and suffix products avoid a deconvolution).

Both are exact up to the truncation of the lattice at ``s_max`` (mean plus
many standard deviations; the neglected tail mass is reported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce

import numpy as np

from engine.errors import ConfigError, DataError, ResourceError

MODELS = ("poisson", "bernoulli")


def benefit_lattice(benefits: np.ndarray, unit: float | None = None) -> tuple[float, np.ndarray]:
    """Return the lattice unit u and integer benefits b = B / u.

    The default unit is the greatest common divisor of the benefits in cents.
    A given ``unit`` must divide every benefit (within 1e-9 relative).
    """
    benefits = np.asarray(benefits, dtype=float)
    if unit is None:
        cents = np.rint(benefits * 100).astype(np.int64)
        if np.any(np.abs(cents - benefits * 100) > 1e-6 * np.maximum(1.0, benefits * 100)):
            raise ConfigError("benefit_cny: benefits must be whole cents for the exact lattice (or pass unit=)")
        g = reduce(math.gcd, cents.tolist())
        unit = g / 100.0
    b = benefits / unit
    bi = np.rint(b).astype(np.int64)
    if np.any(np.abs(b - bi) > 1e-9 * np.maximum(1.0, b)) or np.any(bi <= 0):
        raise ConfigError(f"unit: {unit} does not divide every benefit into a positive whole number")
    return float(unit), bi


def _poisson_pmf(mu: np.ndarray, b: np.ndarray, s_max: int) -> np.ndarray:
    """Compound-Poisson pmf on 0..s_max via Panjer, rescaled against under/overflow.

    Classes with the same lattice benefit are merged first, so each step costs one
    term per distinct benefit.
    """
    lam = float(mu.sum())
    terms: dict[int, float] = {}
    for bk, c in zip(b.tolist(), (mu * b).tolist()):
        if c > 0:
            terms[int(bk)] = terms.get(int(bk), 0.0) + c
    pairs = sorted(terms.items())
    f = [0.0] * (s_max + 1)
    f[0] = 1.0  # true f = f * exp(log_scale)
    log_scale = -lam
    big, shrink = 1e250, 1e-250
    for s in range(1, s_max + 1):
        acc = 0.0
        for bk, c in pairs:
            if bk > s:
                break
            acc += c * f[s - bk]
        v = acc / s
        f[s] = v
        if v > big:
            for t in range(s + 1):  # rare: rescale everything computed so far
                f[t] *= shrink
            log_scale += 250 * math.log(10)
    arr = np.asarray(f)
    if log_scale != -lam:
        # rescaled (exp(-lambda) underflows): the bookkeeping of log_scale loses ~1e-16 x lambda,
        # so normalise on the lattice instead (its tail beyond the default s_max is below 1e-30)
        return arr / arr.sum()
    with np.errstate(divide="ignore", under="ignore"):
        return np.where(arr > 0, np.exp(np.log(np.where(arr > 0, arr, 1.0)) + log_scale), 0.0)


def _binom_lattice(n: int, p: float, b: int, s_max: int) -> np.ndarray:
    from scipy import stats

    f = np.zeros(min(s_max, n * b) + 1)
    k = np.arange(0, len(f) // b + 1 if b else 1)
    k = k[k * b < len(f)]
    f[k * b] = stats.binom.pmf(k, n, p)
    return f


def _conv(a: np.ndarray, c: np.ndarray, s_max: int) -> np.ndarray:
    out = np.convolve(a, c)[: s_max + 1]
    return out


@dataclass
class ConditionalMean:
    """Law of S on a lattice and the conditional-mean allocation of each class.

    Attributes
    ----------
    s_cny : lattice points of S in CNY (0, u, 2u, ... s_max u).
    pmf : P(S = s).
    allocation_cny : array (K, len(s)); row k is E[X_i | S = s] for a member of class k.
    tail_mass : 1 - sum(pmf), the probability beyond s_max that was neglected.
    """

    s_cny: np.ndarray
    pmf: np.ndarray
    allocation_cny: np.ndarray
    unit_cny: float
    tail_mass: float


def _prepare(members, probs, benefits, model, unit, s_max, max_lattice):
    n = np.asarray(members, dtype=float)
    p = np.asarray(probs, dtype=float)
    B = np.asarray(benefits, dtype=float)
    if model not in MODELS:
        raise ConfigError(f"model: must be one of {', '.join(MODELS)}")
    if not (n.shape == p.shape == B.shape) or n.ndim != 1 or n.size == 0:
        raise DataError("members, probs and benefits must be 1-d arrays of the same non-zero length")
    if np.any(~np.isfinite(n)) or np.any(n < 0) or np.any(~np.isfinite(p)) or np.any(p < 0):
        raise DataError("members and probs must be finite and >= 0")
    if model == "bernoulli" and (np.any(p > 1) or np.any(n != np.rint(n))):
        raise DataError("bernoulli model: probs must be <= 1 and members whole numbers")
    u, b = benefit_lattice(B, unit)
    mean = float(np.sum(n * p * b))
    var = float(np.sum(n * p * b * b))
    if s_max is None:
        s_max = int(math.ceil(mean + 12 * math.sqrt(var) + 40 * b.max()))
        if model == "bernoulli":
            s_max = min(s_max, int(np.sum(n * b)))
    if s_max + 1 > max_lattice:
        raise ResourceError(
            f"conditional mean: the lattice needs {s_max + 1:,} points (> max_lattice {max_lattice:,}); "
            "round benefits to a coarser unit="
        )
    return n, p, B, u, b, s_max


def _shift(g: np.ndarray, bk: int, s_max: int) -> np.ndarray:
    out = np.zeros(s_max + 1)
    if bk <= s_max:
        out[bk:] = g[: s_max + 1 - bk]
    return out


def _law_and_numerators(n, p, B, b, s_max, model):
    """The pmf f of S on 0..s_max and a function k -> E[X_i 1{S = s}] / 1 for a member of class k."""
    if model == "poisson":
        f = _poisson_pmf(n * p, b, s_max)
        return f, lambda k: p[k] * B[k] * _shift(f, int(b[k]), s_max)
    parts = [_binom_lattice(int(n[k]), p[k], int(b[k]), s_max) for k in range(len(b))]
    pre = [np.ones(1)]
    for part in parts:
        pre.append(_conv(pre[-1], part, s_max))
    suf = [np.ones(1)]
    for part in reversed(parts):
        suf.append(_conv(suf[-1], part, s_max))
    suf = suf[::-1]  # suf[k] = classes k .. end
    f = np.zeros(s_max + 1)
    f[: len(pre[-1])] = pre[-1]

    def num(k: int) -> np.ndarray:
        if n[k] < 1:
            return np.zeros(s_max + 1)
        others = _conv(_conv(pre[k], suf[k + 1], s_max), _binom_lattice(int(n[k]) - 1, p[k], int(b[k]), s_max), s_max)
        g = np.zeros(s_max + 1)
        g[: len(others)] = others
        return p[k] * B[k] * _shift(g, int(b[k]), s_max)

    return f, num


def _ratio(num: np.ndarray, f: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, num / np.where(f > 0, f, 1.0), 0.0)


def conditional_mean(
    members: np.ndarray,
    probs: np.ndarray,
    benefits: np.ndarray,
    *,
    model: str = "poisson",
    unit: float | None = None,
    s_max: int | None = None,
    max_lattice: int = 2_000_000,
) -> ConditionalMean:
    """Exact conditional-mean risk sharing E[X_i | S] for classes of identical risks.

    Parameters
    ----------
    members : N_k per class (integers for ``model="bernoulli"``).
    probs : expected claims per member per period p_k (a probability <= 1 for Bernoulli).
    benefits : fixed benefit B_k (CNY).
    model : ``"poisson"`` or ``"bernoulli"`` claim counts.
    unit : lattice unit in CNY (default: the benefits' GCD in cents).
    s_max : last lattice point (default: mean + 12 sd + 40 largest benefits, in units).
    max_lattice : refuse (ResourceError) larger lattices.

    Notes
    -----
    See the module docstring: Poisson ``E[X_i | S=s] = p_i B_i f(s - b_i) / f(s)``;
    Bernoulli ``p_i B_i f_{-i}(s - b_i) / f(s)``. Where ``f(s) = 0`` the allocation is 0.
    The allocation is a (classes x lattice) array; :func:`conditional_mean_moments`
    needs memory for one lattice only.
    """
    n, p, B, u, b, s_max = _prepare(members, probs, benefits, model, unit, s_max, max_lattice)
    if len(b) * (s_max + 1) > 4 * max_lattice:
        raise ResourceError(
            f"conditional mean: {len(b)} classes x {s_max + 1:,} lattice points is too large for the full "
            "allocation; use conditional_mean_moments"
        )
    f, num = _law_and_numerators(n, p, B, b, s_max, model)
    alloc = np.array([_ratio(num(k), f) for k in range(len(b))])
    return ConditionalMean(
        s_cny=np.arange(s_max + 1) * u, pmf=f, allocation_cny=alloc, unit_cny=u, tail_mass=float(max(0.0, 1 - f.sum()))
    )


def conditional_mean_moments(
    members: np.ndarray,
    probs: np.ndarray,
    benefits: np.ndarray,
    *,
    model: str = "poisson",
    unit: float | None = None,
    s_max: int | None = None,
    max_lattice: int = 2_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of E[X_i | S] for a member of each class (memory O(lattice)).

    Notes
    -----
    Same law as :func:`conditional_mean`. Under Poisson counts the allocation is
    p_k B_k r_b(S) with r_b(s) = f(s - b) / f(s), so classes with the same benefit
    share r_b and it is computed once per distinct benefit.
    """
    n, p, B, u, b, s_max = _prepare(members, probs, benefits, model, unit, s_max, max_lattice)
    f, num = _law_and_numerators(n, p, B, b, s_max, model)
    m1 = np.zeros(len(b))
    m2 = np.zeros(len(b))
    if model == "poisson":
        for bk in np.unique(b):
            r = _ratio(_shift(f, int(bk), s_max), f)
            e1, e2 = float(r @ f), float((r * r) @ f)
            sel = b == bk
            m1[sel] = p[sel] * B[sel] * e1
            m2[sel] = (p[sel] * B[sel]) ** 2 * e2
    else:
        for k in range(len(b)):
            h = _ratio(num(k), f)
            m1[k], m2[k] = float(h @ f), float((h * h) @ f)
    return m1, np.sqrt(np.maximum(m2 - m1 * m1, 0.0))
