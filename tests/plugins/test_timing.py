"""Token and password checks take the same time whatever prefix of the secret a guess gets right.

The detector compares the time to reject a guess sharing no prefix with the
secret against one sharing all but its last character, interleaving the two
so machine noise hits both alike, over many rounds, and looks at medians. It
is checked against a deliberately leaky comparison first: if it could not
see that leak, its verdict on ours would mean nothing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from wskit.plugins import Passwords, Tokens

SECRET = "k" * 4096  # long, so a prefix-dependent comparison shows plainly
NO_PREFIX = "x" * 4096
LONG_PREFIX = "k" * 4095 + "x"
ROUNDS = 41
CALLS_PER_SAMPLE = 40


def leaky_equal(guess: str) -> bool:
    for a, b in zip(guess, SECRET, strict=False):
        if a != b:
            return False
    return len(guess) == len(SECRET)


def median_ratio(
    check: Callable[[str], object], first: str = NO_PREFIX, second: str = LONG_PREFIX
) -> float:
    """Median time to check ``second`` over the time to check ``first``."""
    ratios = []
    for _ in range(ROUNDS):
        samples = []
        for guess in (first, second):
            start = time.perf_counter()
            for _ in range(CALLS_PER_SAMPLE):
                check(guess)
            samples.append(time.perf_counter() - start)
        ratios.append(samples[1] / samples[0])
    return statistics.median(ratios)


def test_the_detector_sees_a_leaky_comparison() -> None:
    # A Python loop stopping at the first difference: ~4000x more work.
    assert median_ratio(leaky_equal) > 5


def test_bearer_token_check_does_not_depend_on_a_matching_prefix() -> None:
    table = Tokens({SECRET: "alice"})
    assert table.verify_now(SECRET) is not None
    ratio = median_ratio(table.verify_now)
    assert 0.7 < ratio < 1.4, ratio


def test_basic_password_check_does_not_depend_on_a_matching_prefix() -> None:
    passwords = Passwords({"alice": SECRET})
    assert passwords.verify_now("alice", SECRET) is not None
    ratio = median_ratio(lambda guess: passwords.verify_now("alice", guess))
    assert 0.7 < ratio < 1.4, ratio


def test_basic_unknown_user_costs_what_a_known_user_costs() -> None:
    passwords = Passwords({SECRET: "pw"})
    ratio = median_ratio(lambda user: passwords.verify_now(user, "wrong"), NO_PREFIX, SECRET)
    assert 0.7 < ratio < 1.4, ratio
