"""What the alert transports share: UTC calendar fields from epoch seconds (integer arithmetic,
because time.gmtime's epoch differs between ports) and closing an asyncio stream quietly."""

EPOCH_VALID = 1600000000  # before 2020: the RTC was never set, the time is unknown
# names 3 letters apart: two strings, not two tuples of 19 (device heap)
_DAYS = "MonTueWedThuFriSatSun"
_MONTHS = "JanFebMarAprMayJunJulAugSepOctNovDec"


def utc(epoch):
    """(year, month, day, hour, minute, second, weekday 0=Monday) of epoch seconds (UTC)."""
    days, rem = divmod(int(epoch), 86400)
    # civil_from_days (H. Hinnant): proleptic Gregorian, valid for any epoch >= 0
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    return y, m, d, rem // 3600, rem // 60 % 60, rem % 60, (days + 3) % 7


def iso(epoch):
    """RFC 3339 UTC time ("2026-12-05T05:08:54Z"), or None when the clock was never set."""
    if epoch < EPOCH_VALID:
        return None
    t = utc(epoch)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % t[:6]


def rfc5322(epoch):
    """E-mail Date header value ("Sat, 05 Dec 2026 05:08:54 +0000"), None when unknown."""
    if epoch < EPOCH_VALID:
        return None
    t = utc(epoch)
    return "%s, %02d %s %04d %02d:%02d:%02d +0000" % (
        _DAYS[t[6] * 3:t[6] * 3 + 3], t[2], _MONTHS[t[1] * 3 - 3:t[1] * 3], t[0], t[3], t[4], t[5])


async def close(stream):
    """Close an asyncio stream (writer) without raising: the connection may be dead already."""
    if stream is None:
        return
    try:
        stream.close()
        await stream.wait_closed()
    except Exception:  # a reset peer: nothing left to close
        pass
