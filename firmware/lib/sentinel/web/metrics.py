"""Prometheus metrics from the console's status (Ops.status()), in the text exposition format
0.0.4: a HELP and a TYPE line per family, base units in the names (volts, hertz, seconds,
bytes, percent), `_total` on counters, enums as one series per value (1 for the current one, 0
for the others, so `powersentinel_state{state="ON_BATTERY"} == 1` is a plain query). Pure:
render() yields the text in pieces, so the page is never held whole in RAM.
"""
from sentinel.version import VERSION

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# the state machine's states and the sequencer's tier phases (statemachine.py, seqstate.py),
# written out here so that rendering imports neither module's code a second time
STATES = ("ONLINE", "ON_BATTERY", "SHUTTING_DOWN", "LOAD_OFF", "WAIT_MAINS", "RESTORING")
PHASES = ("idle", "fsd", "waiting", "done", "timeout", "off", "waking", "up")
EVENT_KINDS = ("dip", "swell", "interruption")
CHANNEL = "L1"  # one mains input for now; the label lets a three-phase sentinel add L2, L3


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


def family(name, typ, text):
    return "# HELP %s %s\n# TYPE %s %s\n" % (name, text, name, typ)


def sample(name, labels, v):
    """labels: a preformatted `k="v",...` string, or ""."""
    if labels:
        return "%s{%s} %s\n" % (name, labels, num(v))
    return "%s %s\n" % (name, num(v))


def _one(name, typ, text, v, labels=""):
    return family(name, typ, text) + sample(name, labels, v)


def render(st, http_stats=None):
    """Yield the exposition text for status dict `st` (Ops.status()); http_stats: the web
    server's counters (WebServer.stats) or None."""
    ch = 'channel="%s"' % CHANNEL
    m = st["mains"]
    yield _one("powersentinel_build_info", "gauge", "Firmware version (always 1).", 1,
               'version="%s"' % label(VERSION))
    yield _one("powersentinel_mains_voltage_volts", "gauge",
               "Mains voltage, rms over the last half cycle.", m["v"], ch)
    if m["hz"] is not None:
        yield _one("powersentinel_mains_frequency_hertz", "gauge", "Mains frequency.",
                   m["hz"], ch)
    yield _one("powersentinel_mains_lost", "gauge",
               "1 while the fast loss trigger holds mains as lost.", m["lost"], ch)
    yield _one("powersentinel_mains_good", "gauge",
               "1 while voltage and frequency are within tolerance.", m["good"], ch)
    counts = m.get("counts") or {}
    yield family("powersentinel_mains_events_total", "counter",
                 "IEC 61000-4-30 events since boot, by kind.")
    for k in EVENT_KINDS:
        yield sample("powersentinel_mains_events_total", '%s,kind="%s"' % (ch, k),
                     counts.get(k, 0))
    yield _one("powersentinel_mains_losses_total", "counter",
               "Fast loss triggers (mains lost) since boot.", counts.get("lost", 0), ch)

    u = st["ups"]
    toks = u["status"].split()
    yield _one("powersentinel_ups_charge_percent", "gauge",
               "Battery charge (the UPS's, or the sentinel's estimate).", u["charge"])
    yield _one("powersentinel_ups_runtime_seconds", "gauge",
               "Battery runtime left (the UPS's, or the sentinel's estimate).", u["runtime"])
    yield _one("powersentinel_ups_on_battery", "gauge", "1 while the UPS runs on battery.",
               "OB" in toks)
    yield _one("powersentinel_ups_low_battery", "gauge", "1 while the UPS reports LB.",
               "LB" in toks)
    yield _one("powersentinel_ups_alarm", "gauge", "1 while the UPS reports an alarm.",
               "ALARM" in toks)

    s = st["state"]
    yield family("powersentinel_state", "gauge",
                 "The power state machine's state (1 for the current one).")
    for name in STATES:
        yield sample("powersentinel_state", 'state="%s"' % name, s["name"] == name)
    yield _one("powersentinel_point_of_no_return", "gauge",
               "1 once the shutdown can no longer be cancelled.", s["ponr"])
    yield _one("powersentinel_drill_active", "gauge", "1 while a drill runs.", s["drill"])
    yield _one("powersentinel_plan_id", "gauge", "Number of the current or last plan.",
               s["plan_id"] or 0)

    tiers = st["tiers"]
    if tiers:
        yield family("powersentinel_tier_phase", "gauge",
                     "Each tier's step in the plan (1 for the current one).")
        for t in tiers:
            ph = t["phase"] or "idle"
            for p in PHASES:
                yield sample("powersentinel_tier_phase", 'tier="%s",phase="%s"'
                             % (label(t["name"]), p), ph == p)
        for key, name, text in (
                ("fsd", "powersentinel_tier_fsd", "1 while the tier's NUT UPS reports FSD."),
                ("connected", "powersentinel_tier_hosts_connected",
                 "Configured hosts of the tier whose upsmon is logged in."),
                ("missing", "powersentinel_tier_hosts_missing",
                 "Configured hosts of the tier whose upsmon is not logged in.")):
            yield family(name, "gauge", text)
            for t in tiers:
                v = t[key]
                yield sample(name, 'tier="%s"' % label(t["name"]),
                             len(v) if isinstance(v, list) else v)

    yield _one("powersentinel_nut_clients", "gauge", "NUT client connections open.",
               st["nut"]["clients"])
    h = st["heap"]
    yield _one("powersentinel_heap_free_bytes", "gauge",
               "Free heap after the last collection.", h["free"])
    yield _one("powersentinel_heap_alloc_bytes", "gauge",
               "Allocated heap after the last collection.", h["alloc"])
    lp = st["loop"]
    yield _one("powersentinel_loop_stall_max_seconds", "gauge",
               "Longest event-loop stall since boot.", lp["max_stall_ms"] / 1000)
    yield _one("powersentinel_loop_stall_seconds", "gauge",
               "Longest event-loop stall over the last minute or more.",
               lp["stall_ms_1m"] / 1000)
    yield _one("powersentinel_loop_stalls_total", "counter",
               "Stalls longer than half the ADC ring since boot.", lp["stalls"])
    a = st["adc"]
    yield _one("powersentinel_adc_overruns_total", "counter",
               "ADC blocks lost because the sampler was late.", a["overruns"])
    yield _one("powersentinel_adc_gaps_total", "counter",
               "Gaps in the ADC samples since boot.", a["gaps"])
    yield _one("powersentinel_adc_gap_samples_total", "counter",
               "Samples missing in those gaps.", a["gap_samples"])
    al = st.get("alerts")
    yield _one("powersentinel_alert_queue_depth", "gauge",
               "Alerts waiting for delivery (0 when alerts are not configured).",
               al.get("depth", 0) if isinstance(al, dict) else 0)
    yield _one("powersentinel_errors_total", "counter", "Failures caught in the firmware's hooks.",
               st["errors"])
    yield _one("powersentinel_uptime_seconds", "gauge", "Time since boot.",
               st["uptime_ms"] // 1000)
    if http_stats is not None:
        yield _one("powersentinel_http_requests_total", "counter",
                   "HTTP requests answered.", http_stats["requests"])
        yield family("powersentinel_http_rejected_total", "counter",
                     "HTTP connections refused or requests rejected, by reason.")
        for k in ("bad", "timeouts", "shed", "refused", "auth_failed", "errors"):
            yield sample("powersentinel_http_rejected_total", 'reason="%s"' % k, http_stats[k])
