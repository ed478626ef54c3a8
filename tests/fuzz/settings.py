"""The fuzz tests' hypothesis settings: modest and repeatable by default, long on request.

PROMS_FUZZ_EXAMPLES=300 (say) draws that many examples per property instead of the default,
for a bug hunt; PROMS_FUZZ_SEED=<n> draws a different, still repeatable, sequence. Examples are
always derandomized (CI meets the same ones on every run) and never stored in .hypothesis/.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

DEFAULT_EXAMPLES = 8

settings.register_profile(
    "proms-fuzz",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=int(os.environ.get("PROMS_FUZZ_EXAMPLES") or DEFAULT_EXAMPLES),
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
    print_blob=True,
)
FUZZ = settings.get_profile("proms-fuzz")


def scaled(factor: float) -> settings:
    """The profile with `factor` times its examples (for properties that cover many routes)."""
    return settings(FUZZ, max_examples=max(1, round(FUZZ.max_examples * factor)))
