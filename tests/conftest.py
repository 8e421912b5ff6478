"""Test configuration shared by the whole suite.

* Hypothesis profiles: ``dev`` (the default: fast) and ``ci`` (more examples,
  derandomized so a CI run is repeatable). Pick one with HYPOTHESIS_PROFILE.
* Every async test runs on asyncio and on Trio through AnyIO's pytest plugin:
  ``anyio_backend`` is parametrized over both here, once for the whole suite.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every ``@pytest.mark.anyio`` test on both event loops."""
    return str(request.param)
