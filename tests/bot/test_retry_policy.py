"""The msrest retry-policy speed-up changes nothing but speed."""

from __future__ import annotations

from msrest.universal_http.requests import ClientRetryPolicy

from bot.auth import _fast_retry_policy


def test_frozenset_safe_codes_give_the_same_retry_policy() -> None:
    original = [i for i in range(500) if i != 408] + [501, 505]  # msrest 0.7.1's list
    _fast_retry_policy()
    assert isinstance(ClientRetryPolicy.safe_codes, frozenset) and set(original) == ClientRetryPolicy.safe_codes
    policy = ClientRetryPolicy().policy
    assert list(policy.status_forcelist) == [i for i in range(999) if i not in original]
    assert (policy.total, policy.connect, policy.read, policy.backoff_factor) == (3, 3, 3, 0.8)
    _fast_retry_policy()  # idempotent
    assert isinstance(ClientRetryPolicy.safe_codes, frozenset)
