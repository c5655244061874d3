"""The configuration schema, defined once as data.

The device validator (`sentinel.config.validate`) and the host tools (TOML in, JSON out; docs)
both walk this table, so they cannot disagree. It uses only what MicroPython and CPython share:
tuples, dicts, str, int, float, bool, None.

A section is a tuple of fields (a tuple, so the order is the same on every interpreter: errors
and docs come out in this order). A field is a dict:
  k      key name
  t      type: "int" | "float" | "bool" | "str" | "enum" | "enums" (list of enum values) |
         "names" (list of distinct strings of format "name"; min/max: item count) |
         "section" (nested object; "f" holds its fields) |
         "list" (list of objects; "f" holds the fields of one item)
  d      default; REQUIRED (below) when the key must be given. Sections take their default from
         their fields; lists of objects default to an empty list.
  min, max   inclusive range for int/float; length range for str; item count for lists
  c      allowed values for enum / enums
  fmt    extra string rule, checked by config.py: "name" ([A-Za-z0-9_-], usable as a NUT UPS
         name), "user" ([A-Za-z0-9_.-]), "text" (printable ASCII), "ipv4", "host" (ipv4 or DNS
         name), "mac", "health", "contacts", "pwhash"
  null   True when JSON null is allowed (means "not used")
  doc    one line for humans (docs/configuration.md and `powersentinel config` help)
"""

VERSION = 1  # bump when a key changes meaning; config files carry it in "version"

REQUIRED = "<required>"  # a default that means "no default: the key must be given"

HEALTH_KINDS = ("nut", "tcp:<port>", "none")
CONTACT_SIGNALS = ("OL", "OB", "LB", "RB", "BYPASS", "CAL", "OFF", "OVER")
# the NUT instant commands the sentinel can offer (nut/instcmd.py performs them)
INSTCMDS = ("ALL", "beeper.toggle", "load.off", "load.on", "sentinel.drill.start",
            "sentinel.drill.stop", "shutdown.return", "shutdown.stop", "test.battery.start.deep",
            "test.battery.start.quick", "test.battery.stop")

SITE = (
    {"k": "name", "t": "str", "d": "sentinel", "min": 1, "max": 32, "fmt": "text",
     "doc": "site name shown in NUT descriptions, the console and logs"},
)

# Mains channels. The ADC inputs a multi-channel board may sample, by port: RP2040 ADC0-2 on
# GP26-28 (ADC3 is GP29, VSYS/3 on a Pico); ESP32 ADC1 only (GPIO 32-39: ADC2 stops working while
# Wi-Fi is on). A channel's default pin is its port's DEFAULT_PINS entry at its index.
MAX_CHANNELS = 3
ADC_PINS = {"rp2": (26, 27, 28), "esp32": (32, 33, 34, 35, 36, 37, 38, 39)}
DEFAULT_PINS = {"rp2": (26, 27, 28), "esp32": (34, 35, 32)}

CHANNEL = (
    {"k": "name", "t": "str", "d": REQUIRED, "min": 1, "max": 8, "fmt": "name",
     "doc": "channel name: L1, L2, L3 for phases (served as NUT input.L1-N.voltage ...), "
            "or a feed name such as A, B"},
    {"k": "pin", "t": "int", "d": None, "null": True, "min": 0, "max": 48,
     "doc": "GPIO of this channel's sensor (null: the board's default for this channel, "
            "docs/wiring.md)"},
    {"k": "volts_per_count", "t": "float", "d": None, "null": True, "min": 0.000001,
     "max": 100.0, "doc": "this channel's calibration (null: mains.volts_per_count)"},
    {"k": "feed", "t": "str", "d": None, "null": True, "min": 1, "max": 8, "fmt": "name",
     "doc": "the feed this channel senses (null: the channel's name when it is not a phase)"},
)

MAINS = (
    {"k": "nominal_v", "t": "float", "d": 230.0, "min": 90.0, "max": 400.0,
     "doc": "declared supply voltage Udin (V rms)"},
    {"k": "nominal_hz", "t": "enum", "d": 50, "c": (50, 60), "doc": "nominal mains frequency (Hz)"},
    {"k": "sample_rate", "t": "int", "d": 4000, "min": 1000, "max": 20000,
     "doc": "ADC sampling rate (samples/s)"},
    {"k": "block_len", "t": "int", "d": 16, "min": 4, "max": 512,
     "doc": "samples per ADC block handed to the monitor"},
    {"k": "volts_per_count", "t": "float", "d": 0.02, "min": 0.000001, "max": 100.0,
     "doc": "calibration: mains volts per ADC count (after offset removal)"},
    {"k": "dip_pct", "t": "float", "d": 90.0, "min": 50.0, "max": 99.0,
     "doc": "a dip starts when Urms(1/2) falls below this % of nominal_v"},
    {"k": "swell_pct", "t": "float", "d": 110.0, "min": 101.0, "max": 150.0,
     "doc": "a swell starts when Urms(1/2) rises above this % of nominal_v"},
    {"k": "interruption_pct", "t": "float", "d": 10.0, "min": 1.0, "max": 50.0,
     "doc": "an interruption (mains lost) starts below this % of nominal_v"},
    {"k": "hysteresis_pct", "t": "float", "d": 2.0, "min": 0.0, "max": 10.0,
     "doc": "an event ends this many % of nominal_v back past its threshold"},
    {"k": "freq_tolerance_hz", "t": "float", "d": 1.0, "min": 0.05, "max": 5.0,
     "doc": "mains is good only within nominal_hz +- this"},
    {"k": "lost_pct", "t": "float", "d": 50.0, "min": 20.0, "max": 80.0,
     "doc": "fast loss trigger: mains is lost when no sample reaches this % of the nominal "
            "peak (x 0.866) for 120 degrees, or the rms over the last half period is below "
            "this % of nominal_v"},
    {"k": "capture_pre_ms", "t": "int", "d": 100, "min": 0, "max": 1000,
     "doc": "waveform kept before an event's start (several mains channels: divided among "
            "them, each channel kept)"},
    {"k": "capture_post_ms", "t": "int", "d": 400, "min": 0, "max": 2000,
     "doc": "waveform kept after an event's start (several mains channels: divided among "
            "them)"},
    {"k": "channels", "t": "list", "f": CHANNEL, "min": 0, "max": MAX_CHANNELS,
     "doc": "mains channels sensed together (phases L1..L3, feeds A, B, ...); none: one "
            "channel on board.adc_pin with volts_per_count"},
)


def channel_feed(ch):
    """The feed a mains channel senses: its "feed", else its name unless it is a phase ("")."""
    name = ch.get("name") or ""
    return ch.get("feed") or ("" if name in ("L1", "L2", "L3") else name)


def sensed_feeds(cfg):
    """The feeds the mains channels sense, in channel order, each once."""
    known = []
    for c in cfg["mains"]["channels"]:
        f = channel_feed(c)
        if f and f not in known:
            known.append(f)
    return known


def phase_supplies(cfg):
    """The phase channels (L1..L3) that sense no feed: a server may list them in its feeds
    (a single-phase server on L2), the policy then treats each phase as a feed."""
    return [c["name"] for c in cfg["mains"]["channels"] if not channel_feed(c)]


def feeds_errors(cfg):
    """Each server's feeds must be feeds a mains channel senses, or phases sensing no feed.
    [] when they are."""
    ph = phase_supplies(cfg)
    known = sensed_feeds(cfg) + ph
    out = []
    for ti, t in enumerate(cfg["tiers"]):
        for hi, h in enumerate(t.get("hosts") or ()):
            for fi, f in enumerate(h.get("feeds") or ()):
                if f in known:
                    continue
                where = "tiers[%d].hosts[%d].feeds[%d]" % (ti, hi, fi)
                if known:
                    out.append("%s: feed %s is not sensed by any mains channel; allowed: %s "
                               "(the feeds of mains.channels%s)" % (
                                   where, f, ", ".join(known),
                                   ", and its phases that sense no feed" if ph else ""))
                else:
                    out.append("%s: feed %s is not sensed: no mains channel senses a feed; "
                               "list the feeds in mains.channels (name or feed) first"
                               % (where, f))
    return out


def ups_feeds_errors(cfg):
    """The UPSes per feed: each names a sensed feed, one UPS a feed, ups.feed set when
    ups.feeds lists more, one more Q1 at most (the board's second UART). [] when they fit."""
    u = cfg["ups"]
    more = u.get("feeds") or ()
    if not more and u.get("feed") is None:
        return []
    known = sensed_feeds(cfg)
    out = []
    if more and u.get("feed") is None:
        out.append("ups.feed: ups.feeds lists more UPSes; name the feed this UPS powers, "
                   "allowed: %s" % (", ".join(known) or "a feed of mains.channels"))
    seen = {}
    q1s = 0
    for where, f in [("ups.feed", u.get("feed"))] + [
            ("ups.feeds[%d].feed" % i, e.get("feed")) for i, e in enumerate(more)]:
        if f is None:
            continue
        if f not in known:
            out.append("%s: feed %s is not sensed by any mains channel; allowed: %s"
                       % (where, f, ", ".join(known) or "none (list mains.channels first)"))
        elif f in seen:
            out.append("%s: feed %s already has its UPS (%s); one UPS a feed"
                       % (where, f, seen[f]))
        else:
            seen[f] = where
    for i, e in enumerate(more):
        if e.get("link") == "q1":
            q1s += 1
            if q1s > 1:
                out.append("ups.feeds[%d].link: a board has one more UART for a second Q1 UPS; "
                           "allowed: contacts, or none (with shutdown_output)" % i)
    return out + _ups_lines_errors(u, more)


def contact_lines(rules):
    """The contact lines a (valid) rule string reads, as a bitmask."""
    m = 0
    for rule in rules.split(";"):
        for term in rule.split("=")[-1].replace("|", "&").split("&"):
            try:
                m |= 1 << int(term.strip().lstrip("^"))
            except ValueError:
                pass
    return m


def _lines(mask):
    return ", ".join(str(n) for n in range(32) if mask >> n & 1)


def _ups_lines_errors(u, more):
    """Each UPS read over contacts reads lines no other UPS reads (a line is one UPS's signal),
    and each UPS commanded by an output has its own (one pulse must not cut two loads)."""
    out = []
    ins = []    # (where, lines) of each UPS read over contacts
    outs = []   # (where, line) of each UPS commanded by an output
    if u["link"] == "contacts":
        ins.append(("ups.contacts", contact_lines(u["contacts"])))
    if u["link"] != "q1" and u.get("shutdown_output") is not None:
        outs.append(("ups.shutdown_output", u["shutdown_output"]))
    for i, e in enumerate(more):
        link = e.get("link")
        if link == "contacts":
            where = "ups.feeds[%d].contacts" % i
            rules = e.get("contacts") or ""
            if "OB=" not in rules and "OL=" not in rules:
                out.append("%s: link is \"contacts\" but no OB or OL rule is given; allowed: "
                           "e.g. \"OB=3;LB=4;\" on lines no other UPS reads" % where)
            mine = contact_lines(rules)
            for other, lines in ins:
                if mine & lines:
                    n = _lines(mine & lines)
                    out.append("%s: %s already read by %s; each UPS needs contact lines of "
                               "its own" % (where, ("lines %s are" if "," in n else "line %s is")
                                            % n, other))
            ins.append((where, mine))
        line = e.get("shutdown_output")
        if link != "q1" and line is not None:
            where = "ups.feeds[%d].shutdown_output" % i
            for other, used in outs:
                if line == used:
                    out.append("%s: output line %d already commands another UPS (%s); each "
                               "UPS needs an output line of its own" % (where, line, other))
            outs.append((where, line))
    return out


# The contact input and output lines a real board wires, by port (hal/rp2.py, hal/esp32.py:
# CONTACT_PINS, OUTPUT_PINS). The virtual board's header has more (8 and 4): other ports are
# not checked, and the firmware leaves a UPS whose rules name a line it lacks unread.
BOARD_LINES = {"rp2": (4, 1), "esp32": (4, 1)}


def board_line_uses(cfg, ins, outs):
    """(key, line, "contact" | "output") of each contact line >= ins a UPS's rules read and
    each output line >= outs a UPS's load-off pulses."""
    u = cfg["ups"]
    out = []
    for i in range(-1, len(u.get("feeds") or ())):
        e = u if i < 0 else u["feeds"][i]
        where = "ups" if i < 0 else "ups.feeds[%d]" % i
        if e.get("link") == "contacts":
            m = contact_lines(e.get("contacts") or "")
            for n in range(ins, 32):
                if m >> n & 1:
                    out.append((where + ".contacts", n, "contact"))
        line = e.get("shutdown_output")
        if e.get("link") != "q1" and line is not None and line >= outs:
            out.append((where + ".shutdown_output", line, "output"))
    return out


def line_range(n):
    """The lines of a board with n of them, as the messages write them."""
    return "line 0" if n == 1 else "lines 0-%d" % (n - 1)


def board_lines_errors(cfg, port=None):
    """A contact or output line a UPS uses that `port`'s board does not wire; [] for a port
    BOARD_LINES does not list (host, unix: the virtual board)."""
    n = BOARD_LINES.get(port) if port else None
    if n is None:
        return []
    return ["%s: %s line %d is not wired on %s boards; allowed: %s" % (
        where, kind, line, port, line_range(n[0] if kind == "contact" else n[1]))
        for where, line, kind in board_line_uses(cfg, n[0], n[1])]


def mains_errors(cfg, port=None):
    """Cross-field problems of the (validated) mains section: duplicate channel names, and a
    channel pin that is not an ADC input of `port` ("rp2", "esp32"; None: of any port this
    firmware supports). [] when there are none."""
    chans = cfg["mains"]["channels"]
    out = []
    seen = {}
    pins = ADC_PINS.get(port) if port else None
    every = ()
    for p in sorted(ADC_PINS):
        every += ADC_PINS[p]
    for i, c in enumerate(chans):
        name = c.get("name")
        if name is not None:
            if name in seen:
                out.append("mains.channels[%d].name: %s is already used by mains.channels[%d]; "
                           "channel names must be unique" % (i, name, seen[name]))
            else:
                seen[name] = i
        pin = c.get("pin")
        if pin is None:
            continue
        if pins is not None and pin not in pins:
            out.append("mains.channels[%d].pin: GPIO %d is not an ADC input on %s; allowed: %s"
                       % (i, pin, port, ", ".join(str(x) for x in pins)))
        elif pins is None and pin not in every:
            out.append("mains.channels[%d].pin: GPIO %d is not an ADC input on any supported "
                       "board; allowed: %s" % (i, pin, "; ".join(
                           "%s %s" % (p, ", ".join(str(x) for x in ADC_PINS[p]))
                           for p in sorted(ADC_PINS))))
    for i, c in enumerate(chans):
        pin = c.get("pin")
        for j in range(i):
            if pin is not None and chans[j].get("pin") == pin:
                out.append("mains.channels[%d].pin: GPIO %d is already sampled by "
                           "mains.channels[%d]" % (i, pin, j))
                break
    return out

# One more UPS per other feed (two feeds, one UPS each): its link and its load-off. Boards have
# two usable UARTs (rp2 UART0/UART1, ESP32 UART1/UART2): one more Q1 UPS at most.
UPS_FEED = (
    {"k": "feed", "t": "str", "d": REQUIRED, "min": 1, "max": 8, "fmt": "name",
     "doc": "the feed this UPS powers (a feed of mains.channels)"},
    {"k": "link", "t": "enum", "d": "q1", "c": ("q1", "contacts", "none"),
     "doc": "q1: Megatec/Q1 on the board's second UART (docs/wiring.md); contacts: dry "
            "contacts on lines of its own (contacts); none: not read"},
    {"k": "baud", "t": "enum", "d": 2400, "c": (1200, 2400, 4800, 9600),
     "doc": "Q1 serial speed (8N1)"},
    {"k": "contacts", "t": "str", "d": "", "min": 0, "max": 96, "fmt": "contacts",
     "doc": "with link contacts: its wiring rules, as ups.contacts, on contact lines no other "
            "UPS reads (debounced by ups.debounce_ms)"},
    {"k": "shutdown_output", "t": "int", "d": None, "null": True, "min": 0, "max": 31,
     "doc": "with link none or contacts: output line that tells this UPS to cut its load "
            "(null: none)"},
)

UPS = (
    {"k": "link", "t": "enum", "d": "none", "c": ("q1", "contacts", "none"),
     "doc": "how the UPS is read: Megatec/Q1 serial, dry contacts, or not at all"},
    {"k": "baud", "t": "enum", "d": 2400, "c": (1200, 2400, 4800, 9600),
     "doc": "Q1 serial speed (8N1)"},
    {"k": "poll_ms", "t": "int", "d": 2000, "min": 250, "max": 60000,
     "doc": "Q1 poll period"},
    {"k": "link_lost_s", "t": "int", "d": 10, "min": 1, "max": 600,
     "doc": "the UPS link counts as lost after this long without a valid reply"},
    {"k": "contacts", "t": "str", "d": "OB=1;LB=2;", "min": 0, "max": 96, "fmt": "contacts",
     "doc": "contact wiring rules: SIGNAL=[^]line[&|[^]line...]; signals OL OB LB RB BYPASS CAL OFF OVER"},
    {"k": "debounce_ms", "t": "int", "d": 50, "min": 0, "max": 5000,
     "doc": "a contact must hold its level this long to count"},
    {"k": "battery_runtime_s", "t": "int", "d": 1200, "min": 0, "max": 86400,
     "doc": "full-charge runtime estimate for UPSes that do not report one (contacts, Q1)"},
    {"k": "shutdown_output", "t": "int", "d": None, "null": True, "min": 0, "max": 31,
     "doc": "output line that tells a contact UPS to cut its load (null: none wired)"},
    {"k": "shutdown_delay_min", "t": "int", "d": 1, "min": 1, "max": 10,
     "doc": "minutes between the load-off command and the UPS cutting its output"},
    {"k": "restore_min", "t": "int", "d": 1, "min": 1, "max": 9999,
     "doc": "minutes of returned mains before the UPS restores its output (never 0: servers must come back)"},
    {"k": "feed", "t": "str", "d": None, "null": True, "min": 1, "max": 8, "fmt": "name",
     "doc": "the feed this UPS powers (null: every feed); set it when ups.feeds lists more UPSes"},
    {"k": "feeds", "t": "list", "f": UPS_FEED, "min": 0, "max": MAX_CHANNELS - 1,
     "doc": "one more UPS per other feed (docs/feeds.md): each is read and, at load-off, "
            "commanded when it powers a server that was shut down"},
)

POLICY = (
    {"k": "grace_s", "t": "int", "d": 60, "min": 0, "max": 86400,
     "doc": "time on battery before the shutdown starts (outages shorter than this are only logged)"},
    {"k": "charge_floor_pct", "t": "int", "d": 40, "min": 0, "max": 100,
     "doc": "shut down at once when the UPS charge falls below this while on battery"},
    {"k": "runtime_floor_s", "t": "int", "d": 300, "min": 0, "max": 86400,
     "doc": "shut down at once when the UPS runtime falls below this while on battery"},
    {"k": "shutdown_on_link_lost", "t": "bool", "d": True,
     "doc": "shut down when the UPS link is lost while on battery (the battery can no longer be seen)"},
    {"k": "stable_mains_s", "t": "int", "d": 60, "min": 0, "max": 3600,
     "doc": "after a shutdown, mains must be good this long before servers are powered on"},
    {"k": "restart_charge_pct", "t": "int", "d": 20, "min": 0, "max": 100,
     "doc": "after a shutdown, the UPS charge must be at least this before servers are powered on"},
    {"k": "return_stable_ms", "t": "int", "d": 2000, "min": 0, "max": 60000,
     "doc": "mains must be back this long to end an outage (short returns do not reset the grace countdown)"},
    {"k": "lb_filter_ms", "t": "int", "d": 3000, "min": 0, "max": 60000,
     "doc": "a UPS low-battery signal while on line must last this long to count"},
)

NUT_USER = (
    {"k": "name", "t": "str", "d": REQUIRED, "min": 1, "max": 32, "fmt": "user",
     "doc": "user name given by upsmon (USERNAME)"},
    {"k": "password", "t": "str", "d": REQUIRED, "min": 1, "max": 128, "fmt": "pwhash",
     "doc": "sha256$<salt>$<hex> hash of the password (never plaintext on the device)"},
    {"k": "role", "t": "enum", "d": "secondary", "c": ("secondary", "primary"),
     "doc": "upsmon role: a primary may also send PRIMARY and FSD"},
    {"k": "actions", "t": "enums", "d": (), "c": ("FSD", "SET", "INSTCMD"),
     "doc": "extra rights granted to this user (INSTCMD: every instant command)"},
    {"k": "instcmds", "t": "enums", "d": (), "c": INSTCMDS,
     "doc": "instant commands this user may run (ALL: every one), as upsd.users' instcmds"},
)

NUT = (
    {"k": "port", "t": "int", "d": 3493, "min": 1, "max": 65535, "doc": "NUT server TCP port"},
    {"k": "max_conns", "t": "int", "d": 8, "min": 1, "max": 16,
     "doc": "simultaneous client connections (the idlest is shed beyond this)"},
    {"k": "idle_timeout_s", "t": "int", "d": 60, "min": 5, "max": 3600,
     "doc": "a client silent this long is disconnected"},
    {"k": "stale_s", "t": "int", "d": 15, "min": 1, "max": 300,
     "doc": "UPS data older than this is reported as DATA-STALE"},
    {"k": "users", "t": "list", "f": NUT_USER, "min": 0, "max": 16,
     "doc": "accounts that upsmon logs in with"},
    {"k": "tls_cert", "t": "str", "d": "", "min": 0, "max": 3500, "fmt": "text",
     "doc": "STARTTLS server certificate, DER in base64 (empty: no TLS); the site file names a "
            "PEM file instead, which config push checks and converts (docs/nut-tls.md)"},
    {"k": "tls_key", "t": "str", "d": "", "min": 0, "max": 3500, "fmt": "text",
     "doc": "the certificate's private key, DER in base64; the site file names a PEM file "
            "(unencrypted; keep it mode 0600)"},
    {"k": "tls_handshake_s", "t": "int", "d": 10, "min": 1, "max": 60,
     "doc": "after OK STARTTLS, a client must finish the TLS handshake and send its first "
            "request within this time, else it is disconnected"},
)

HOST = (
    {"k": "name", "t": "str", "d": REQUIRED, "min": 1, "max": 32, "fmt": "name",
     "doc": "server name, unique over all tiers"},
    {"k": "address", "t": "str", "d": REQUIRED, "min": 1, "max": 253, "fmt": "host",
     "doc": "IPv4 address or DNS name the server's upsmon connects from and health checks use"},
    {"k": "mac", "t": "str", "d": None, "null": True, "min": 17, "max": 17, "fmt": "mac",
     "doc": "MAC for Wake-on-LAN (null: the server powers on by itself when its outlet returns)"},
    {"k": "health", "t": "str", "d": "nut", "min": 3, "max": 9, "fmt": "health",
     "doc": "up-check after power-on: nut (its upsmon logged in again), tcp:<port>, or none"},
    {"k": "feeds", "t": "names", "d": (), "min": 0, "max": MAX_CHANNELS,
     "doc": "the mains feeds powering this server (mains.channels' feeds, e.g. [\"A\", \"B\"], "
            "or the phases of a three-phase site, e.g. [\"L2\"]); empty: every feed (a "
            "single-feed site); docs/feeds.md"},
)

TIER = (
    {"k": "name", "t": "str", "d": REQUIRED, "min": 1, "max": 32, "fmt": "name",
     "doc": "tier name, also the NUT UPS name its servers monitor"},
    {"k": "max_wait_s", "t": "int", "d": 120, "min": 1, "max": 3600,
     "doc": "longest wait for the tier's servers to log out after FSD"},
    {"k": "delay_s", "t": "int", "d": 0, "min": 0, "max": 3600,
     "doc": "pause after the previous tier is down (or up) before acting on this one"},
    {"k": "hosts", "t": "list", "f": HOST, "min": 0, "max": 32,
     "doc": "servers of this tier"},
    {"k": "confirm_off", "t": "bool", "d": False,
     "doc": "the tier is down only once each server has logged out and then failed its tcp "
            "health check (a logout is not a halted host); needs health = tcp:<port> on every "
            "server of the tier; bounded by max_wait_s"},
)

RECOVERY = (
    {"k": "wol_port", "t": "int", "d": 9, "min": 1, "max": 65535, "doc": "Wake-on-LAN UDP port"},
    {"k": "wol_broadcast", "t": "str", "d": "255.255.255.255", "min": 7, "max": 15, "fmt": "ipv4",
     "doc": "broadcast address magic packets go to"},
    {"k": "boot_timeout_s", "t": "int", "d": 300, "min": 10, "max": 3600,
     "doc": "how long a woken server may take to pass its health check"},
    {"k": "wake_retries", "t": "int", "d": 3, "min": 0, "max": 10,
     "doc": "magic packets re-sent to a server that is not up yet"},
)

# The whole file. Tiers are listed in shutdown order (first tier stops first); power-on runs
# in the reverse order (the last tier, e.g. storage, starts first).
NETWORK = (
    {"k": "ssid", "t": "str", "d": "", "min": 0, "max": 32, "fmt": "text",
     "doc": "Wi-Fi network to join (ESP32, Pico W); empty: no Wi-Fi (wired or virtual board)"},
    {"k": "password", "t": "str", "d": "", "min": 0, "max": 64, "fmt": "text",
     "doc": "Wi-Fi passphrase (stored on the device: Wi-Fi needs it in clear)"},
)

HTTP = (
    {"k": "enabled", "t": "bool", "d": False,
     "doc": "serve the status page (/) and Prometheus metrics (/metrics) over HTTP"},
    {"k": "port", "t": "int", "d": 80, "min": 1, "max": 65535, "doc": "HTTP server TCP port"},
    {"k": "bind", "t": "str", "d": None, "null": True, "min": 7, "max": 15, "fmt": "ipv4",
     "doc": "address to listen on (null: the one NUT listens on, every interface on a board)"},
    {"k": "refresh_s", "t": "int", "d": 10, "min": 0, "max": 3600,
     "doc": "the status page reloads itself this often (0: never)"},
    {"k": "recent", "t": "int", "d": 6, "min": 0, "max": 20,
     "doc": "journal records listed on the status page"},
    {"k": "max_conns", "t": "int", "d": 4, "min": 1, "max": 8,
     "doc": "simultaneous HTTP connections (a newcomer sheds the one slowest to send its request)"},
    {"k": "timeout_ms", "t": "int", "d": 5000, "min": 500, "max": 60000,
     "doc": "a request must arrive whole within this, and its answer be taken within as long again"},
)

BOARD = (
    {"k": "adc_pin", "t": "int", "d": None, "null": True, "min": 0, "max": 48,
     "doc": "GPIO of the mains sensor (null: the board module's default, docs/wiring.md)"},
)

# Alerts (sentinel.alerts): every transport off by default; its module is imported only when
# enabled. Severities are RFC 5424 names, most severe first.
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
              "authpriv", "ftp", "ntp", "audit", "console", "cron2", "local0", "local1",
              "local2", "local3", "local4", "local5", "local6", "local7")


def _server(what, port):
    # where a transport sends: its server's address and port
    return ({"k": "host", "t": "str", "d": "", "min": 0, "max": 64, "fmt": "text",
             "doc": "%s: IPv4 address or DNS name (a name is resolved once per connection, "
                    "blocking)" % what},
            {"k": "port", "t": "int", "d": port, "min": 1, "max": 65535, "doc": what + " port"})


def _login(what, clear_why):
    # optional credentials: an empty user means none
    return ({"k": "user", "t": "str", "d": "", "min": 0, "max": 64, "fmt": "text",
             "doc": "%s user name; empty: none" % what},
            {"k": "password", "t": "str", "d": "", "min": 0, "max": 64, "fmt": "text",
             "doc": "%s password (stored on the device in clear: %s)" % (what, clear_why)})


def _timeout(d=5000):
    return {"k": "timeout_ms", "t": "int", "d": d, "min": 500, "max": 30000,
            "doc": "one delivery attempt is abandoned (and retried later) after this long"}


ALERTS_SYSLOG = (
    {"k": "enabled", "t": "bool", "d": False, "doc": "send alerts to a syslog receiver"},
) + _server("syslog receiver", 514) + (
    {"k": "proto", "t": "enum", "d": "tcp", "c": ("tcp", "udp"),
     "doc": "tcp: RFC 6587 octet counting, a stopped receiver is noticed and the alert retried; "
            "udp: RFC 5426, fire and forget (lost while the receiver is down)"},
    {"k": "facility", "t": "enum", "d": "local0", "c": FACILITIES,
     "doc": "syslog facility of every alert (the severity comes from the alert)"},
    _timeout(),
)

ALERTS_WEBHOOK = (
    {"k": "enabled", "t": "bool", "d": False, "doc": "POST alerts as JSON to a URL"},
    {"k": "url", "t": "str", "d": "", "min": 0, "max": 200, "fmt": "text",
     "doc": "http://host[:port]/path (plain HTTP; https is not supported)"},
    {"k": "secret", "t": "str", "d": "", "min": 0, "max": 64, "fmt": "text",
     "doc": "shared secret: when set, X-PowerSentinel-Signature: sha256=<HMAC-SHA256 of the body>"},
    _timeout(),
)

# no TLS: use a relay on the local network
ALERTS_SMTP = (
    {"k": "enabled", "t": "bool", "d": False, "doc": "send alerts as e-mail"},
) + _server("SMTP server", 25) + _login("AUTH LOGIN", "SMTP needs it") + (
    {"k": "sender", "t": "str", "d": "", "min": 0, "max": 100, "fmt": "text",
     "doc": "envelope and From address"},
    {"k": "to", "t": "str", "d": "", "min": 0, "max": 255, "fmt": "text",
     "doc": "recipients, comma separated"},
    _timeout(10000),
)

ALERTS_MQTT = (
    {"k": "enabled", "t": "bool", "d": False, "doc": "publish alerts and state to an MQTT broker"},
) + _server("MQTT broker", 1883) + _login("broker", "MQTT needs it") + (
    {"k": "client_id", "t": "str", "d": "", "min": 0, "max": 64, "fmt": "text",
     "doc": "MQTT client id; empty: powersentinel-<site name>"},
    {"k": "topic_prefix", "t": "str", "d": "powersentinel", "min": 1, "max": 64, "fmt": "text",
     "doc": "first level(s) of every topic (no + or #, no leading or trailing /)"},
    {"k": "discovery", "t": "bool", "d": True, "doc": "publish Home Assistant MQTT discovery"},
    {"k": "discovery_prefix", "t": "str", "d": "homeassistant", "min": 1, "max": 64,
     "fmt": "text", "doc": "Home Assistant's discovery topic prefix"},
    {"k": "keepalive_s", "t": "int", "d": 60, "min": 0, "max": 3600,
     "doc": "MQTT keepalive (0: none)"},
    _timeout(),
)

ALERTS = (
    {"k": "min_severity", "t": "enum", "d": "notice", "c": SEVERITIES,
     "doc": "alerts less severe than this are not sent (they stay in the journal)"},
    {"k": "backoff_min_ms", "t": "int", "d": 1000, "min": 100, "max": 60000,
     "doc": "first retry delay after a failed delivery (doubles, jittered, per transport)"},
    {"k": "backoff_max_ms", "t": "int", "d": 300000, "min": 1000, "max": 3600000,
     "doc": "longest retry delay"},
    {"k": "syslog", "t": "section", "f": ALERTS_SYSLOG, "doc": "syslog (RFC 5424)"},
    {"k": "webhook", "t": "section", "f": ALERTS_WEBHOOK, "doc": "HTTP webhook"},
    {"k": "smtp", "t": "section", "f": ALERTS_SMTP, "doc": "e-mail over SMTP"},
    {"k": "mqtt", "t": "section", "f": ALERTS_MQTT, "doc": "MQTT and Home Assistant discovery"},
)


def alerts_errors(cfg):
    """Cross-field problems of the (validated) alerts section: an enabled transport without
    where to send. [] when there are none."""
    a = cfg["alerts"]
    out = []
    for name, keys in (("syslog", ("host",)), ("webhook", ("url",)),
                       ("smtp", ("host", "sender", "to")), ("mqtt", ("host",))):
        sec = a[name]
        if not sec["enabled"]:
            continue
        for k in keys:
            if not sec[k].strip():
                out.append("alerts.%s.%s: must be given when alerts.%s.enabled is true"
                           % (name, k, name))
    url = a["webhook"]["url"]
    if a["webhook"]["enabled"] and url and not url.startswith("http://"):
        out.append("alerts.webhook.url: %s must start with http:// (https is not supported)"
                   % url)
    for k in ("topic_prefix", "discovery_prefix"):
        v = a["mqtt"][k]
        # MQTT forbids wildcards in a topic a client publishes to
        if "+" in v or "#" in v or v.startswith("/") or v.endswith("/"):
            out.append("alerts.mqtt.%s: %s must not hold + or # nor start or end with /"
                       % (k, v))
    if a["backoff_max_ms"] < a["backoff_min_ms"]:
        out.append("alerts.backoff_max_ms: must be at least backoff_min_ms (%d)"
                   % a["backoff_min_ms"])
    return out


# Pair mode (sentinel.pair, docs/redundancy.md): off by default; its package is imported only
# when enabled.
PAIR = (
    {"k": "enabled", "t": "bool", "d": False,
     "doc": "run as one of a redundant pair of sentinels, watching the other over a UDP link"},
    {"k": "id", "t": "enum", "d": "A", "c": ("A", "B"),
     "doc": "this sentinel's id in the pair; the other one must have the other id"},
    {"k": "peer", "t": "str", "d": None, "null": True, "min": 7, "max": 15, "fmt": "ipv4",
     "doc": "the other sentinel's IPv4 address (required when enabled)"},
    {"k": "port", "t": "int", "d": 3495, "min": 1, "max": 65535,
     "doc": "UDP port this sentinel listens on for its peer"},
    {"k": "peer_port", "t": "int", "d": None, "null": True, "min": 1, "max": 65535,
     "doc": "UDP port the peer listens on (null: the same as port)"},
    {"k": "key", "t": "str", "d": "", "min": 0, "max": 64, "fmt": "text",
     "doc": "shared key, the same on both sentinels, at least 16 characters (every frame "
            "carries its HMAC-SHA256; stored on the device in clear)"},
    {"k": "heartbeat_ms", "t": "int", "d": 500, "min": 100, "max": 10000,
     "doc": "a frame is sent to the peer this often"},
    {"k": "dead_ms", "t": "int", "d": 3000, "min": 300, "max": 120000,
     "doc": "the peer counts as dead (redundancy lost) after this long without an authentic "
            "frame; at least 3 heartbeat_ms"},
)

PAIR_KEY_MIN = 16


def pair_errors(cfg):
    """Cross-field problems of the (validated) pair section. [] when there are none. The peer's
    id cannot be known here: a peer with our own id is found and logged at run time."""
    p = cfg.get("pair")
    if not p or not p["enabled"]:
        return []
    out = []
    if not p["key"]:
        out.append("pair.key: must be given when pair.enabled is true (the same key on both "
                   "sentinels, at least %d characters)" % PAIR_KEY_MIN)
    elif len(p["key"]) < PAIR_KEY_MIN:
        out.append("pair.key: is %d characters long; at least %d are needed"
                   % (len(p["key"]), PAIR_KEY_MIN))
    peer = p["peer"]
    if not peer:
        out.append("pair.peer: must be given when pair.enabled is true (the other sentinel's "
                   "IPv4 address)")
    elif peer in ("0.0.0.0", "255.255.255.255"):
        out.append("pair.peer: %s is not one sentinel's address" % peer)
    elif peer.startswith("127.") and (p["peer_port"] or p["port"]) == p["port"]:
        out.append("pair.peer: %s port %d is this sentinel itself; give the peer's address, or "
                   "a different peer_port on loopback" % (peer, p["port"]))
    if p["dead_ms"] < 3 * p["heartbeat_ms"]:
        out.append("pair.dead_ms: must be at least 3 heartbeat_ms (%d), or one lost frame "
                   "would count the peer dead" % (3 * p["heartbeat_ms"]))
    return out


SCHEMA = (
    {"k": "version", "t": "int", "d": VERSION, "min": VERSION, "max": VERSION,
     "doc": "configuration format version"},
    {"k": "site", "t": "section", "f": SITE, "doc": "this installation"},
    {"k": "mains", "t": "section", "f": MAINS, "doc": "mains measurement and event thresholds"},
    {"k": "ups", "t": "section", "f": UPS, "doc": "the UPS and how it is read and commanded"},
    {"k": "policy", "t": "section", "f": POLICY, "doc": "when to shut down and when to power back on"},
    {"k": "nut", "t": "section", "f": NUT, "doc": "the NUT network server"},
    {"k": "tiers", "t": "list", "f": TIER, "min": 0, "max": 8,
     "doc": "server tiers in shutdown order"},
    {"k": "recovery", "t": "section", "f": RECOVERY, "doc": "powering servers back on"},
    {"k": "network", "t": "section", "f": NETWORK, "doc": "how the board joins the network"},
    {"k": "http", "t": "section", "f": HTTP, "doc": "status page and Prometheus metrics (off by default)"},
    {"k": "board", "t": "section", "f": BOARD, "doc": "pin overrides for this board"},
    {"k": "alerts", "t": "section", "f": ALERTS,
     "doc": "telling people and their tools (syslog, webhook, e-mail, MQTT); all off by default"},
    {"k": "pair", "t": "section", "f": PAIR,
     "doc": "redundant pair of sentinels and their peer link (off by default)"},
)


def field(path):
    """The field dict for a dotted path such as "policy.grace_s" or "tiers.hosts.mac"
    (list items are entered by name, without an index); None if there is none."""
    fields = SCHEMA
    f = None
    for part in path.split("."):
        f = None
        for cand in fields:
            if cand["k"] == part:
                f = cand
                break
        if f is None:
            return None
        fields = f.get("f", ())
    return f


def walk(fields=SCHEMA, prefix=""):
    """Yield (dotted_path, field) for every field, depth first, in schema order."""
    for f in fields:
        p = prefix + f["k"]
        yield p, f
        if "f" in f:
            for sub in walk(f["f"], p + "."):
                yield sub
