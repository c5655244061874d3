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
CHANNEL = "L1"  # one mains input for now; the label lets a three-phase sentinel add L2, L3
HTTP_REJECTED = ("bad", "timeouts", "shed", "refused", "auth_failed", "errors")

# Every family, one line each: "name type help" (the name without PREFIX). One string, not a
# constant per text: this module is on the heap while it answers a scrape, and each constant
# costs heap even from ROMFS.
TABLE = """
build_info gauge Firmware version (always 1).
mains_voltage_volts gauge Mains voltage, rms over the last half cycle.
mains_frequency_hertz gauge Mains frequency.
mains_lost gauge 1 while the fast loss trigger holds mains as lost.
mains_good gauge 1 while voltage and frequency are within tolerance.
mains_events_total counter IEC 61000-4-30 events since boot, by kind.
mains_losses_total counter Fast loss triggers (mains lost) since boot.
ups_charge_percent gauge Battery charge (the UPS's, or the sentinel's estimate).
ups_runtime_seconds gauge Battery runtime left (the UPS's, or the sentinel's estimate).
ups_on_battery gauge 1 while the UPS runs on battery.
ups_low_battery gauge 1 while the UPS reports LB.
ups_alarm gauge 1 while the UPS reports an alarm.
state gauge The power state machine's state (1 for the current one).
point_of_no_return gauge 1 once the shutdown can no longer be cancelled.
drill_active gauge 1 while a drill runs.
plan_id gauge Number of the current or last plan.
tier_phase gauge Each tier's step in the plan (1 for the current one).
tier_fsd gauge 1 while the tier's NUT UPS reports FSD.
tier_hosts_connected gauge Configured hosts of the tier whose upsmon is logged in.
tier_hosts_missing gauge Configured hosts of the tier whose upsmon is not logged in.
nut_clients gauge NUT client connections open.
heap_free_bytes gauge Free heap after the last collection.
heap_alloc_bytes gauge Allocated heap after the last collection.
loop_stall_max_seconds gauge Longest event-loop stall since boot.
loop_stall_seconds gauge Longest event-loop stall over the last minute or more.
loop_stalls_total counter Stalls longer than half the ADC ring since boot.
adc_overruns_total counter ADC blocks lost because the sampler was late.
adc_gaps_total counter Gaps in the ADC samples since boot.
adc_gap_samples_total counter Samples missing in those gaps.
alert_queue_depth gauge Alerts waiting for delivery (0 when alerts are not configured).
errors_total counter Failures caught in the firmware's hooks.
uptime_seconds gauge Time since boot.
http_requests_total counter HTTP requests answered.
http_rejected_total counter HTTP connections refused or requests rejected, by reason.
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


def family(name):
    """The HELP and TYPE lines of family `name` (without PREFIX), from TABLE."""
    i = TABLE.find("\n" + name + " ")
    typ, text = TABLE[i + 2 + len(name):TABLE.find("\n", i + 1)].split(" ", 1)
    return "# HELP %s%s %s\n# TYPE %s%s %s\n" % (PREFIX, name, text, PREFIX, name, typ)


def sample(name, labels, v):
    """A sample of family `name` (without PREFIX); labels: a preformatted `k="v",...`
    string, or ""."""
    if labels:
        return "%s%s{%s} %s\n" % (PREFIX, name, labels, num(v))
    return "%s%s %s\n" % (PREFIX, name, num(v))


def one(name, v, labels=""):
    """Family `name` with its one sample."""
    return family(name) + sample(name, labels, v)


def render(st, http_stats=None):
    """Yield the exposition text for status dict `st` (Ops.status()); http_stats: the web
    server's counters (WebServer.stats) or None."""
    ch = 'channel="%s"' % CHANNEL
    m = st["mains"]
    yield one("build_info", 1, 'version="%s"' % label(VERSION))
    yield one("mains_voltage_volts", m["v"], ch)
    if m["hz"] is not None:
        yield one("mains_frequency_hertz", m["hz"], ch)
    yield one("mains_lost", m["lost"], ch)
    yield one("mains_good", m["good"], ch)
    counts = m.get("counts") or {}
    yield family("mains_events_total")
    for k in EVENT_KINDS:
        yield sample("mains_events_total", '%s,kind="%s"' % (ch, k), counts.get(k, 0))
    yield one("mains_losses_total", counts.get("lost", 0), ch)

    u = st["ups"]
    toks = u["status"].split()
    yield one("ups_charge_percent", u["charge"])
    yield one("ups_runtime_seconds", u["runtime"])
    yield one("ups_on_battery", "OB" in toks)
    yield one("ups_low_battery", "LB" in toks)
    yield one("ups_alarm", "ALARM" in toks)

    s = st["state"]
    yield family("state")
    for name in STATES:
        yield sample("state", 'state="%s"' % name, s["name"] == name)
    yield one("point_of_no_return", s["ponr"])
    yield one("drill_active", s["drill"])
    yield one("plan_id", s["plan_id"] or 0)

    tiers = st["tiers"]
    if tiers:
        yield family("tier_phase")
        for t in tiers:
            ph = t["phase"] or "idle"
            for p in PHASES:
                yield sample("tier_phase", 'tier="%s",phase="%s"' % (label(t["name"]), p),
                             ph == p)
        for key, name in (("fsd", "tier_fsd"), ("connected", "tier_hosts_connected"),
                          ("missing", "tier_hosts_missing")):
            yield family(name)
            for t in tiers:
                v = t[key]
                yield sample(name, 'tier="%s"' % label(t["name"]),
                             len(v) if isinstance(v, list) else v)

    yield one("nut_clients", st["nut"]["clients"])
    h = st["heap"]
    yield one("heap_free_bytes", h["free"])
    yield one("heap_alloc_bytes", h["alloc"])
    lp = st["loop"]
    yield one("loop_stall_max_seconds", lp["max_stall_ms"] / 1000)
    yield one("loop_stall_seconds", lp["stall_ms_1m"] / 1000)
    yield one("loop_stalls_total", lp["stalls"])
    a = st["adc"]
    yield one("adc_overruns_total", a["overruns"])
    yield one("adc_gaps_total", a["gaps"])
    yield one("adc_gap_samples_total", a["gap_samples"])
    al = st.get("alerts")
    yield one("alert_queue_depth", al.get("depth", 0) if isinstance(al, dict) else 0)
    yield one("errors_total", st["errors"])
    yield one("uptime_seconds", st["uptime_ms"] // 1000)
    if http_stats is not None:
        yield one("http_requests_total", http_stats["requests"])
        yield family("http_rejected_total")
        for k in HTTP_REJECTED:
            yield sample("http_rejected_total", 'reason="%s"' % k, http_stats[k])
