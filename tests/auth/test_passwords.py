"""Password hashing at the configured (production) cost."""

from __future__ import annotations

import proms.config
from proms.auth.passwords import hasher_from_config, password_problem, verify
from proms.auth.services import LockoutPolicy


def production_hasher():
    return hasher_from_config(vars(proms.config))


def test_hashes_are_argon2id_at_the_configured_cost() -> None:
    hashed = production_hasher().hash("a long enough password")
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert verify(production_hasher(), hashed, "a long enough password")
    assert not verify(production_hasher(), hashed, "a long enough passworD")


def test_a_corrupt_hash_is_a_mismatch_not_a_crash() -> None:
    assert not verify(production_hasher(), "not-a-hash", "anything")


def test_password_rules() -> None:
    assert password_problem("short") == "Use at least 12 characters."
    assert password_problem("x" * 2000) == "Use at most 1024 characters."
    assert password_problem("twelve chars") is None


def test_lock_grows_and_is_capped() -> None:
    policy = LockoutPolicy(lock_after=5, base_seconds=60, max_seconds=3600)
    durations = [policy.lock_duration(n) for n in range(1, 14)]
    assert durations[:4] == [None] * 4
    assert [d.total_seconds() for d in durations[4:]] == [
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
        3600,
    ]
