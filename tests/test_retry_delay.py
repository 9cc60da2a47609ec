"""The back-off of a retry policy: capped before it grows, for any attempt number."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from firehook.config.functions import RetryPolicy

durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta.max)


@given(
    backoff=durations,
    max_backoff=durations,
    jitter=st.floats(min_value=0, max_value=1),
    retry=st.integers(min_value=-5, max_value=10**12),
)
def test_the_delay_of_any_retry_is_capped_and_never_overflows(
    backoff: timedelta, max_backoff: timedelta, jitter: float, retry: int
) -> None:
    backoff, max_backoff = sorted((backoff, max_backoff))
    policy = RetryPolicy(backoff=backoff, max_backoff=max_backoff, jitter=jitter)
    wait = policy.delay(retry)
    assert timedelta(0) <= wait
    assert wait.total_seconds() <= max_backoff.total_seconds() * (1 + jitter) + 1e-6
    assert policy.model_copy(update={"jitter": 0}).delay(retry) <= max_backoff


def test_the_delay_doubles_from_the_back_off_up_to_its_cap() -> None:
    policy = RetryPolicy(attempts=100, backoff="10s", max_backoff="10m", jitter=0)
    waits = [policy.delay(n).total_seconds() for n in (1, 2, 3, 6, 7, 45, 99, 10**9)]
    assert waits == [10, 20, 40, 320, 600, 600, 600, 600]
