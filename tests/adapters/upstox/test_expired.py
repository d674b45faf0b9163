"""Which expiry Upstox's expired-contract download asks for on each day (``expired._by_expiry``)."""

from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

import pytest

from algocli.adapters.upstox.expired import _by_expiry
from algocli.data.download_options import OptionsError


def _job(expiry, first: date, last: date) -> SimpleNamespace:
    days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    return SimpleNamespace(expiry=expiry, days=[d for d in days if d.weekday() < 5],
                           result=SimpleNamespace(notes=[]))


JUNE, JULY = date(2024, 6, 27), date(2024, 7, 25)


@pytest.mark.parametrize("expiry, listed, have", [("current", [], "none"),
                                                  ("far", [JUNE, JULY], "2024-06-27, 2024-07-25")])
def test_no_listed_expiry_for_any_day_is_an_error_naming_what_was_asked_and_listed(expiry, listed, have):
    job = _job(expiry, date(2024, 6, 13), date(2024, 6, 27))
    with pytest.raises(OptionsError) as caught:
        _by_expiry(job, listed)
    message = str(caught.value)
    assert message.startswith(f"--expiry {expiry}: Upstox lists no contracts of a {expiry} expiry for any day from "
                              f"2024-06-13 to 2024-06-27 (it has {have}; ")
    assert ("pick a listed one with --expiry YYYY-MM-DD" in message) == bool(listed)


def test_days_past_the_last_listed_expiry_are_skipped_with_a_note():
    job = _job("current", date(2024, 6, 24), date(2024, 7, 2))
    assert _by_expiry(job, [JUNE]) == {JUNE: [date(2024, 6, 24), date(2024, 6, 25), date(2024, 6, 26), JUNE]}
    assert job.result.notes == ["3 day(s) from 2024-06-28 to 2024-07-02 skipped: Upstox lists no contracts of a "
                                "current expiry for them (it has 2024-06-27)"]
    # with a later expiry listed, each day goes to the nth expiry on or after it, and nothing is skipped
    job = _job("next", date(2024, 6, 24), date(2024, 6, 28))
    assert _by_expiry(job, [JUNE, JULY, date(2024, 8, 29)]) == {
        JULY: [date(2024, 6, 24), date(2024, 6, 25), date(2024, 6, 26), date(2024, 6, 27)],
        date(2024, 8, 29): [date(2024, 6, 28)]}
    assert job.result.notes == []
