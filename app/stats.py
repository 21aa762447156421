"""Small exact statistics shared by domains (no SciPy at runtime)."""

from math import exp, lgamma, log


def _log_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else float("-inf")
    if p >= 1.0:
        return 0.0 if k == n else float("-inf")
    return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1) + k * log(p) + (n - k) * log(1 - p)


def binomial_cdf(k: float, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p); a fractional k counts down to its floor."""
    top = min(int(k), n)
    if top < 0:
        return 0.0
    return min(1.0, sum(exp(_log_pmf(i, n, p)) for i in range(top + 1)))


def binomial_sf(k: float, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p); a fractional k counts up to its ceiling."""
    low = max(int(-(-k // 1)), 0)
    if low > n:
        return 0.0
    return min(1.0, sum(exp(_log_pmf(i, n, p)) for i in range(low, n + 1)))
