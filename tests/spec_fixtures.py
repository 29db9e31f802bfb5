"""
Shared by the tests of L{scheduler0.schedule.spec} (test_spec_*): the zones and 2027 DST
transitions they use, C{fires()} to list a spec's next fire times, and the hypothesis
strategies of the property tests.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from scheduler0.schedule.spec import parse_spec


UTC = timezone.utc
NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
SANTIAGO = ZoneInfo("America/Santiago")
APIA = ZoneInfo("Pacific/Apia")
ZUTC = ZoneInfo("UTC")

#: 2027 DST changes, checked against zoneinfo in tests.test_spec_dst.DstFactsTests.
NY_SPRING = datetime(2027, 3, 14, 7, 0, tzinfo=UTC)  # 02:00 EST -> 03:00 EDT
NY_FALL = datetime(2027, 11, 7, 6, 0, tzinfo=UTC)  # 02:00 EDT -> 01:00 EST
LONDON_SPRING = datetime(2027, 3, 28, 1, 0, tzinfo=UTC)  # 01:00 GMT -> 02:00 BST
LONDON_FALL = datetime(2027, 10, 31, 1, 0, tzinfo=UTC)  # 02:00 BST -> 01:00 GMT
LH_FALL = datetime(2027, 4, 3, 15, 0, tzinfo=UTC)  # 02:00 +11 -> 01:30 +10:30
LH_SPRING = datetime(2027, 10, 2, 15, 30, tzinfo=UTC)  # 02:00 +10:30 -> 02:30 +11

TRANSITIONS = [
    (NY, NY_SPRING),
    (NY, NY_FALL),
    (LONDON, LONDON_SPRING),
    (LONDON, LONDON_FALL),
    (LORD_HOWE, LH_FALL),
    (LORD_HOWE, LH_SPRING),
]

T0 = datetime(2027, 1, 1, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fires(text: str, zone: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """`count` consecutive fires of `text` strictly after `after`."""
    schedule = parse_spec(text)
    out: list[datetime] = []
    for _ in range(count):
        nxt = schedule.next_after(after, zone, T0)
        assert nxt is not None
        out.append(nxt)
        after = nxt
    return out


def local_strings(instants: list[datetime], zone: ZoneInfo) -> list[str]:
    return [i.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S%z") for i in instants]


PROPERTY_SPECS = [
    "*/5 * * * *",
    "0 * * * *",
    "30 2 * * *",
    "30 1 * * *",
    "0 9 * * mon-fri",
    "0 0 1 * *",
    "15,45 */3 * * *",
    "0 0 29 2 *",
    "*/20 * * * * *",
    "10 30 1 * * *",
    "@hourly",
    "@weekly",
]
PROPERTY_ZONES = [NY, LONDON, LORD_HOWE, ZUTC, ZoneInfo("Asia/Kolkata"),
                  ZoneInfo("Pacific/Chatham")]


def _instants() -> st.SearchStrategy[datetime]:
    """Uniform instants plus instants within a few hours of a DST change."""
    uniform = st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    )
    near = st.tuples(
        st.sampled_from([change for _, change in TRANSITIONS]),
        st.integers(min_value=-4 * 3600 * 10**6, max_value=4 * 3600 * 10**6),
    ).map(lambda pair: pair[0] + timedelta(microseconds=pair[1]))
    return st.one_of(uniform, near)
