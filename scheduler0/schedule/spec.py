"""Job schedule specs: ``parse_spec`` and the rules specs follow (PRODUCT.md section 5).

The work is split by kind: :mod:`.cron` (cron fields, the day rule, DST), :mod:`.intervals`
(``@every``, ``@at``), :mod:`.zones` (``load_zone``), :mod:`.fire_times` (``next_fire``,
``FireTimeCache``) and :mod:`.base` (``Schedule``, ``SpecError``); importers keep using
this module, which re-exports their public names.

Accepted specs
--------------
* 5 fields, standard crontab: ``minute hour day-of-month month day-of-week``.
* 6 fields, **seconds first** (Quartz / the Go original):
  ``second minute hour day-of-month month day-of-week``.
  Per field: ``*`` (``?`` is accepted as an alias), numbers, ``a-b``, ``*/n``, ``a-b/n``,
  ``a/n`` (= ``a-max/n``), comma lists; month names ``jan..dec``, weekday names ``sun..sat``
  (``0`` and ``7`` are both Sunday). ``L``, ``W``, ``#``, ``H`` and ``R`` are refused: they
  are not standard and ``H``/``R`` would make fire times depend on hidden state.
* Day rule (Vixie cron / cronie): when the text of either day field (day-of-month or
  day-of-week) starts with ``*`` (``*``, ``*/2``, ``?``), a day must match **both**; only
  when both are restricted does a day matching **either** fire. ``0 0 */2 * 1`` runs on
  odd-dated Mondays, ``0 0 1 * 1`` on the 1st and on every Monday. Like cronie this reads
  the text, not the values: ``1-31`` is restricted, ``*/1`` is not.
* Descriptors ``@yearly @annually @monthly @weekly @daily @midnight @hourly`` with their
  standard meaning (no hashing).
* ``@every <duration>``: Go duration syntax restricted to whole seconds, units ``s m h d``
  (``90s``, ``1h30m``, ``1.5h``, ``2d12h``); at least 1 s. Fires at ``anchor + k*duration``
  (``k >= 1``) in absolute time, independent of the zone, so the phase survives restarts.
* ``@at <RFC 3339 time with Z or offset>``: one shot.

Time zones and daylight saving (cron and descriptor specs)
----------------------------------------------------------
Fields are matched on the wall clock of the job's IANA zone. Wall-clock slots that the
spec names are turned into instants by cronie's rules, which tell two kinds of spec apart:

* the **hour field is a wildcard** when its text starts with ``*`` (``*``, ``*/2``, ``?``,
  ``@hourly``) or it lists all 24 hours (``0-23``): the job is periodic, a missed period is
  not made up and a repeated one runs again;
* otherwise the spec is **fixed-time** (``30 2 * * *``, ``*/15 2 * * *``, ``@daily``): each
  of its slots runs once a day, so none is lost and none is repeated.

* **Spring-forward gap** (shorter than 3 hours). A slot that does not exist (02:30 on the
  day New York jumps from 02:00 to 03:00) is **skipped** by a wildcard-hour spec
  (``30 * * * *`` runs at 01:30 EST and 03:30 EDT, one real hour apart) and fires at the
  first instant after the gap (03:00 EDT) for a fixed-time spec; several slots of one gap
  (``*/15 2 * * *``) collapse into that one instant, which fires once.
* **Long gap** (3 hours or more: not a DST change but a zone moving across the date line,
  Pacific/Apia skipped 2011-12-30). Its slots are skipped by every spec, as cronie skips
  them after a clock jump of 3 hours or more, so ``0 9 * * 1-5`` is not moved onto
  Saturday 2011-12-31 00:00: it next runs on Monday 2012-01-02 at 09:00.
* **Fall-back overlap.** A slot that exists twice fires **once, at its first occurrence**
  (fold=0: 01:30 EDT, not again at 01:30 EST) for a fixed-time spec. A wildcard-hour spec
  fires at every real instant whose wall time matches, in both halves of the overlap, so an
  hourly job keeps running every 60 real minutes (and ``0 */3 * * *`` runs twice at 03:00
  when 03:00 repeats).

Where this differs from cronie: cronie also counts a minute field starting with ``*`` as
periodic (``*/15 2 * * *`` would lose the gap's slots and repeat the overlap's), does not
count ``0-23`` (it reads only the text), and runs fixed-time jobs again after a clock jump
back of more than 3 hours (a zone moving back across the date line); here a fixed-time slot
fires once however long the overlap.

croniter is only ever given naive wall-clock datetimes (its own DST handling fires overlap
slots twice) and fields as plain value lists (it misreads some ranges and lists, see
``_croniter_field``); the day rule is decided here and passed as ``day_or``, and the
mapping from wall clock to instants is done here with zoneinfo. One croniter object is kept
per spec (it is zone independent) and searches are capped at ``MAX_YEARS_BETWEEN_MATCHES``
years so that an impossible spec (``0 0 30 2 *``) fails fast while a leap-day spec
(``0 0 29 2 *``, up to 8 years apart around 2100) or the 1st of a month on a weekday
(``0 0 */31 1 mon``, up to 12) still works.

All returned instants are aware UTC datetimes with ``microsecond == 0``. Searches never go
past the end of year 9999 (the last instant a datetime can hold): a schedule whose next fire
would be later has none (``None``), and at job creation that is a SpecError.
"""

from __future__ import annotations

import functools

from .base import EXAMPLES, LAST_INSTANT, Schedule, SpecError, ZoneError, _spec_error
from .cron import _DESCRIPTORS, LONG_GAP, MAX_YEARS_BETWEEN_MATCHES, CronSchedule, _parse_cron
from .fire_times import FireTimeCache, first_fire_or_error, next_fire
from .intervals import AtSchedule, EverySchedule, _parse_at, _parse_every
from .zones import load_zone

__all__ = [
    "EXAMPLES",
    "LAST_INSTANT",
    "LONG_GAP",
    "MAX_YEARS_BETWEEN_MATCHES",
    "AtSchedule",
    "CronSchedule",
    "EverySchedule",
    "FireTimeCache",
    "Schedule",
    "SpecError",
    "ZoneError",
    "first_fire_or_error",
    "load_zone",
    "next_fire",
    "parse_spec",
]


@functools.lru_cache(maxsize=4096)
def parse_spec(text: str) -> Schedule:
    """Parse a spec (cached by text: schedules are immutable and shared); SpecError if bad."""
    if not isinstance(text, str):
        raise _spec_error(text, "a schedule must be a string")
    stripped = text.strip()
    if not stripped:
        raise _spec_error(text, "the schedule is empty")
    if stripped.startswith("@"):
        head, _, rest = stripped.partition(" ")
        head, rest = head.lower(), rest.strip()
        if head in _DESCRIPTORS:
            if rest:
                raise _spec_error(text, f"{head} takes no argument")
            expr = _DESCRIPTORS[head]
            return CronSchedule.build(
                text=head, expr=expr, seconds=False, wildcard_hour=head == "@hourly",
                day_or=False,  # every descriptor has a "*" day field
            )
        if head == "@every":
            return _parse_every(text, rest.lower())
        if head == "@at":
            return _parse_at(text, rest)
        raise _spec_error(
            text,
            f"unknown descriptor {head!r} (supported: {', '.join(_DESCRIPTORS)}, @every, @at)",
        )
    return _parse_cron(text, stripped.lower().split())
