"""Which journal records are alerts: record type -> (severity, one-line text template).

The table (TABLE) is data: a record whose type is not in it is no alert (the outbox skips it). A
template names the record's data fields in braces ("{tier}"); a field the record lacks shows
as "?". State changes take their severity from the state entered (STATE_SEVERITY); a few kinds
are more severe when a field says so (ESCALATE: a failed drill, a failed load-off; a power-on
with hosts that did not come up).
"""

# RFC 5424 severities, most severe first: the index is the syslog severity number
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

# One line per kind: "kind severity template". One string, not a dict of tuples: it costs the
# device heap one object instead of ~70 (this table is resident whenever alerts are enabled).
# Grouped: the sentinel itself; mains; power state and the plan; coverage; drills and UPS
# commands (self-tests run as NUT instant commands); UPS and sensing.
TABLE = """
boot notice sentinel started (firmware {fw}, reset cause {cause}, config {config})
config notice a new configuration was installed
config_error err configuration problem: {error}
stuck alert tasks stopped making progress ({tasks}): the watchdog resets the board
loop_stall warning event loop stalled {ms} ms (limit {limit_ms} ms)
network warning network is {state}
nut_start_failed err the NUT server cannot start: {error}
pair_peer warning pair peer {peer} is {state} ({cause}); redundancy is lost while it is not ALIVE
pair_disagree warning {cause}
pair_agree notice pair sensors agree again after {ms} ms
alert_test notice test alert requested from the console
alerts_lost err {transport}: {count} journal records rotated away undelivered (alerts lost)
mains_lost crit mains lost ({v} V)
mains_event warning mains {type}: {pct}% of nominal for {duration_ms} ms
feed_lost warning feed {feed} lost: redundancy lost; servers on it alone shut down after grace
feed_back notice feed {feed} is back
phase_alarm warning {alarm}
phase_ok notice every mains phase is good again
feed_fsd crit host {host} of tier {tier} lost every feed: forced shutdown sent to it alone
feed_power_on notice host {host} of tier {tier} powered on after its feeds returned (ok: {ok})
power_on_wait notice host {host} of tier {tier} not woken yet: waits for feed(s) {feeds}
state warning state {from} -> {to} ({cause})
client_fsd crit NUT client {user}@{addr} set forced shutdown on {ups}
shutdown_start crit shutdown started, tiers in order: {tiers}
shutdown_cancelled notice shutdown cancelled
power_on_abandoned warning power-on abandoned
tier_fsd crit tier {tier}: forced shutdown sent to {clients} client(s)
tier_done notice tier {tier}: every client logged out after {took_ms} ms
tier_timeout err tier {tier}: clients still logged in after {waited_ms} ms
host_off info host {host} of tier {tier} is off {after_logout_ms} ms after leaving NUT
ups_off crit UPS told to cut its load (ok: {ok})
power_on notice power-on: tier {tier}, {up} host(s) up, not up: {failed}
power_on/done notice power-on finished; hosts not up: {failed}
host_up info host {host} of tier {tier} is up
host_timeout err host {host} of tier {tier} did not come up
wol_skipped warning Wake-on-LAN not sent to {mac}: {reason}
coverage_missing warning host {host} ({addr}) of tier {tier} is not logged in to NUT
coverage_back notice host {host} ({addr}) of tier {tier} is logged in again
drill notice drill finished (ok: {ok}, shutdown {shutdown_s} s)
drill_aborted warning drill aborted: a real outage takes over
nut_instcmd notice UPS command {cmd} from {user}@{addr}: {result}
contact_chatter warning UPS contacts chatter ({edges} edges)
adc_gap info mains samples lost ({gaps} gaps)
"""

STATE_SEVERITY = {"ONLINE": "notice", "ON_BATTERY": "warning", "SHUTTING_DOWN": "crit",
                  "LOAD_OFF": "alert", "WAIT_MAINS": "warning", "RESTORING": "notice"}
# kind -> (field, value, severity): a record whose field has that value takes that severity
ESCALATE = {"drill": ("ok", False, "err"), "ups_off": ("ok", False, "alert"),
            "feed_power_on": ("ok", False, "err"),
            "network": ("state", "up", "notice")}


def rank(severity):
    """0 (emerg) .. 7 (debug); an unknown name ranks as debug."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        return 7


def fill(template, data):
    """The template with each {field} replaced by str(data[field]) ("?" when missing)."""
    out = []
    i = 0
    n = len(template)
    while i < n:
        j = template.find("{", i)
        if j < 0:
            out.append(template[i:])
            break
        k = template.find("}", j)
        if k < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        v = data.get(template[j + 1:k], "?") if isinstance(data, dict) else "?"
        if isinstance(v, list):
            v = ", ".join([str(x) for x in v])
        out.append(str(v))
        i = k + 1
    return "".join(out)


def entry(kind):
    """(severity, template) of `kind`, or None when it is no alert."""
    i = TABLE.find("\n" + kind + " ")
    if i < 0:
        return None
    parts = TABLE[i + 1:TABLE.find("\n", i + 1)].split(" ", 2)
    return parts[1], parts[2]


def kinds():
    """Every kind in the table (docs, tests)."""
    return [ln.split(" ", 1)[0] for ln in TABLE.split("\n") if ln]


def classify(kind, data):
    """(severity, text) of a record of type `kind` with fields `data` (a dict), or None when
    it is no alert."""
    if kind == "power_on" and data.get("done"):
        kind = "power_on/done"  # the whole power-on's end, not one tier's
    k = entry(kind)
    if k is None:
        return None
    sev = k[0]
    if kind == "state":
        sev = STATE_SEVERITY.get(data.get("to", ""), sev)
    elif kind in ESCALATE:
        e = ESCALATE[kind]
        if e[0] in data and data[e[0]] == e[1]:
            sev = e[2]
    elif kind.startswith("power_on") and data.get("failed"):
        sev = "err"
    return sev, fill(k[1], data)


def alert(rec, site):
    """The alert dict (see the package contract) of journal record `rec` (seq, epoch, ms,
    type, data), or None when the record is no alert."""
    data = rec[4] if isinstance(rec[4], dict) else {}
    c = classify(rec[3], data)
    if c is None:
        return None
    return {"id": rec[0], "ts": rec[1], "site": site, "kind": rec[3], "severity": c[0],
            "text": c[1], "data": data}
