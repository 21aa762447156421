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


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (successes may be fractional: a half
    counts half); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = min(max(successes / n, 0.0), 1.0)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
