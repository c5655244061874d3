"""Prometheus metrics from the console's status (Ops.status()), in the text exposition format
0.0.4: a HELP and a TYPE line per family, base units in the names (volts, hertz, seconds,
bytes, percent), `_total` on counters, enums as one series per value (1 for the current one, 0
for the others, so `powersentinel_state{state="ON_BATTERY"} == 1` is a plain query). Pure:
render() yields the text in pieces, so the page is never held whole in RAM.
"""
from sentinel.version import VERSION

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "powersentinel_"

# the state machine's states and the sequencer's tier phases (statemachine.py, seqstate.py),
# written out here so that rendering imports neither module's code a second time
STATES = ("ONLINE", "ON_BATTERY", "SHUTTING_DOWN", "LOAD_OFF", "WAIT_MAINS", "RESTORING")
PHASES = ("idle", "fsd", "waiting", "done", "timeout", "off", "waking", "up")
EVENT_KINDS = ("dip", "swell", "interruption")
CHANNEL = "L1"  # a single mains input; several: each channel's own name, counters as "all"
# the mains part's keys that several channels give one sample each (status mains.channels)
PER_CHANNEL = ("v", "hz", "lost", "good")
HTTP_REJECTED = ("bad", "timeouts", "shed", "refused", "auth_failed", "errors")

# Every family, one line each, in the order written: "name type source help" (the name
# without PREFIX). source: part.key of the status (a sample; the mains part's carry the
# channel label; none when the value is None), part.key|0 (0 for None), part.key/1000 (ms as
# seconds), part//1000 (ms as whole seconds), ups.status~TOKEN (1 while the UPS status holds
# TOKEN), tiers.key (one sample per tier, the list's length for a list; the family only when
# there are tiers), or * (written by render's own code). One string, not a constant per name
# and text: this module is on the heap while it answers a scrape, and each string constant
# longer than a few characters costs heap even from ROMFS.
TABLE = """
build_info gauge * Firmware version (always 1).
mains_voltage_volts gauge mains.v Mains voltage, rms over the last half cycle.
mains_frequency_hertz gauge mains.hz Mains frequency.
mains_lost gauge mains.lost 1 while the fast loss trigger holds mains as lost.
mains_good gauge mains.good 1 while voltage and frequency are within tolerance.
mains_events_total counter * IEC 61000-4-30 events since boot, by kind.
mains_losses_total counter * Fast loss triggers (mains lost) since boot.
ups_charge_percent gauge ups.charge Battery charge (the UPS's, or the sentinel's estimate).
ups_runtime_seconds gauge ups.runtime Battery runtime left (the UPS's, or the sentinel's estimate).
ups_on_battery gauge ups.status~OB 1 while the UPS runs on battery.
ups_low_battery gauge ups.status~LB 1 while the UPS reports LB.
ups_alarm gauge ups.status~ALARM 1 while the UPS reports an alarm.
state gauge * The power state machine's state (1 for the current one).
point_of_no_return gauge state.ponr 1 once the shutdown can no longer be cancelled.
drill_active gauge state.drill 1 while a drill runs.
plan_id gauge state.plan_id|0 Number of the current or last plan.
tier_phase gauge * Each tier's step in the plan (1 for the current one).
tier_fsd gauge tiers.fsd 1 while the tier's NUT UPS reports FSD.
tier_hosts_connected gauge tiers.connected Configured hosts of the tier whose upsmon is logged in.
tier_hosts_missing gauge tiers.missing Configured hosts of the tier whose upsmon is not logged in.
nut_clients gauge nut.clients NUT client connections open.
heap_free_bytes gauge heap.free Free heap after the last collection.
heap_alloc_bytes gauge heap.alloc Allocated heap after the last collection.
loop_stall_max_seconds gauge loop.max_stall_ms/1000 Longest event-loop stall since boot.
loop_stall_seconds gauge loop.stall_ms_1m/1000 Longest event-loop stall over the last minute or more.
loop_stalls_total counter loop.stalls Stalls longer than half the ADC ring since boot.
adc_overruns_total counter adc.overruns ADC blocks lost because the sampler was late.
adc_gaps_total counter adc.gaps Gaps in the ADC samples since boot.
adc_gap_samples_total counter adc.gap_samples Samples missing in those gaps.
feed_lost gauge * 1 while every mains channel of the feed is lost (two-feed sites, by feed).
alert_queue_depth gauge * Alerts waiting for delivery (0 when alerts are not configured).
errors_total counter errors Failures caught in the firmware's hooks.
uptime_seconds gauge uptime_ms//1000 Time since boot.
http_requests_total counter * HTTP requests answered.
http_rejected_total counter * HTTP connections refused or requests rejected, by reason.
"""


def label(v):
    """A label value, escaped as the format requires."""
    v = str(v)
    if "\\" in v or '"' in v or "\n" in v:
        v = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return v


def num(v):
    """A sample value: integers as such, floats as Python writes them, booleans as 0/1,
    None as NaN (never written: callers skip a None they can)."""
    if v is None:
        return "NaN"
    if v is True:
        return "1"
    if v is False:
        return "0"
    if isinstance(v, int):
        return "%d" % v
    return repr(float(v))


def sample(name, labels, v):
    """A sample of family `name` (without PREFIX); labels: a preformatted `k="v",...`
    string, or ""."""
    if labels:
        return "%s%s{%s} %s\n" % (PREFIX, name, labels, num(v))
    return "%s%s %s\n" % (PREFIX, name, num(v))


def _value(part, key):
    """The value a TABLE source's key names in a status part (key~TOKEN, key|0, key)."""
    tok = key.find("~")
    if tok > 0:
        return key[tok + 1:] in part[key[:tok]].split()
    if key.endswith("|0"):
        v = part[key[:-2]]
        return 0 if v is None else v
    return part[key]


def render(st, http_stats=None):
    """Yield the exposition text for the status `st` (Ops.status(), or web.site.Live: each
    part is read when its families are written, and only the last one is kept); http_stats:
    the web server's counters (WebServer.stats) or None."""
    ch = 'channel="%s"' % ("all" if st["mains"].get("channels") else CHANNEL)
    pname = None   # the part read last, and its value
    part = {}
    i = 0
    while True:
        i = TABLE.find("\n", i) + 1
        j = TABLE.find("\n", i)
        if j < 0:
            return
        name, typ, src, text = TABLE[i:j].split(" ", 3)
        head = "# HELP %s%s %s\n# TYPE %s%s %s\n" % (PREFIX, name, text, PREFIX, name, typ)
        if src != "*":
            div = 1
            k = src.find("/")
            if k > 0:
                div = 1000 if src[k + 1] != "/" else -1000
                src = src[:k]
            k = src.find(".")
            if k < 0:  # a part that is a number
                p = src
                v = st[p]
            else:
                p = src[:k]
                if p != pname:
                    part = {}  # the previous part is not kept while this one is built
                    part = st[p]
                    pname = p
                key = src[k + 1:]
                if p == "tiers":
                    if part:
                        yield head
                        for t in part:
                            v = t[key]
                            yield sample(name, 'tier="%s"' % label(t["name"]),
                                         len(v) if isinstance(v, list) else v)
                    continue
                if p == "mains" and key in PER_CHANNEL and part.get("channels"):
                    yield head
                    for c in part["channels"]:
                        if c[key] is not None:
                            yield sample(name, 'channel="%s"' % label(c["name"]), c[key])
                    continue
                v = _value(part, key)
            if v is None:
                continue
            if div == -1000:
                v //= 1000
            elif div == 1000:
                v /= 1000
            yield head + sample(name, ch if p == "mains" else "", v)
        elif name == "build_info":
            yield head + sample(name, 'version="%s"' % label(VERSION), 1)
        elif name == "mains_events_total":
            yield head
            counts = st["mains"].get("counts") or {}
            for kind in EVENT_KINDS:
                yield sample(name, '%s,kind="%s"' % (ch, kind), counts.get(kind, 0))
        elif name == "mains_losses_total":
            counts = st["mains"].get("counts") or {}
            yield head + sample(name, ch, counts.get("lost", 0))
        elif name == "state":
            s = st["state"]["name"]
            yield head
            for n in STATES:
                yield sample(name, 'state="%s"' % n, s == n)
        elif name == "tier_phase":
            part = st["tiers"]
            pname = "tiers"
            if part:
                yield head
                for t in part:
                    ph = t["phase"] or "idle"
                    for n in PHASES:
                        yield sample(name, 'tier="%s",phase="%s"' % (label(t["name"]), n),
                                     ph == n)
        elif name == "feed_lost":
            fd = st.get("feeds")
            if fd:
                yield head
                for f, state in fd["feeds"].items():
                    yield sample(name, 'feed="%s"' % label(f), state == "lost")
        elif name == "alert_queue_depth":
            al = st.get("alerts")
            yield head + sample(name, "", al.get("depth", 0) if isinstance(al, dict) else 0)
        elif http_stats is not None:
            if name == "http_requests_total":
                yield head + sample(name, "", http_stats["requests"])
            else:
                yield head
                for n in HTTP_REJECTED:
                    yield sample(name, 'reason="%s"' % n, http_stats[n])
