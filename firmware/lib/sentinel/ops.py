"""The console operations (identify, status, config_get, config_put_chunk, config_put_commit,
log_read, capture_list, capture_read, drill_start, time_set, alerts_test, ping): their handler
table (the Ops object itself), their arguments and replies.

The rarely used ones (a config push, reading a capture) live in sentinel.ops_rare, imported
for the request and forgotten after it, so their code does not stay on the heap. No handler
collects garbage: the reporter does, in its own step of the loop.
"""
import sys

from sentinel.runtime import drop_modules
from sentinel.version import PROTOCOL, VERSION

_RARE = ("config_put_chunk", "config_put_commit", "capture_read")
# the status's parts every board has, in the order status() lists them ("alerts" and "pair"
# follow when configured)
PARTS = ("mains", "ups", "state", "tiers", "plan", "drill", "heap", "loop", "adc", "network",
         "nut", "errors", "uptime_ms", "time")
_OPS = ("ping", "identify", "status", "config_get", "log_read", "capture_list", "drill_start",
        "time_set", "alerts_test")


class Ops:
    """rt: the Runtime; the other arguments are what status and identify report: the
    Sensing, the UpsLink or None, the battery model, the state machine, the sequencer, the
    coverage audit, the NutServer, the NutStarter, the LoopLag, the Snapshot; commands: the list
    console commands go into; reboot: async fn() that reboots; cfg_source and cfg_errors: where
    the config came from and what was wrong with it."""
    ups_link = None  # type: str | None  # status's UPS link when the first UPS is unread

    def __init__(self, rt, sensing, link, battery, sm, seq, cov, nut, net, lag, snap, commands,
                 reboot, cfg_source="defaults", cfg_errors=()):
        self.rt = rt
        self.sensing = sensing
        self.link = link
        self.battery = battery
        self.sm = sm
        self.seq = seq
        self.cov = cov
        self.nut = nut
        self.net = net
        self.lag = lag
        self.snap = snap
        self.cfg_source = cfg_source
        self.cfg_errors = list(cfg_errors)
        self.commands = commands  # the control loop's Inputs.commands
        self.reboot = reboot      # async fn() a config commit runs to reboot
        self.upload = None        # offset expected next of a config upload in progress
        self.alerts = None        # the alerts Outbox, when a transport is enabled
        self.web = None  # type: object  # the web server's starter when http is enabled (app)
        self.pair = None          # the pair.link.PairLink when pair.enabled
        self.feeds = None         # the feeds.FeedPolicy on a two-feed site

    def get(self, op):
        """The handler of console op `op`, or None: Ops is the ConsoleServer's handler table.
        The handler is looked up per request, not kept in a dict of bound methods and closures
        for the board's life (saves device heap)."""
        if op in _OPS:
            return getattr(self, op)
        if op in _RARE:
            return self._rare(op)
        return None

    def __getitem__(self, op):
        h = self.get(op)
        if h is None:
            raise KeyError(op)
        return h

    def ping(self, req):
        return "pong"

    def _rare(self, name):
        def call(req):
            # imported for this request only and dropped after it: saves device heap
            from sentinel import ops_rare
            try:
                return getattr(ops_rare, name)(self, req)
            finally:
                del ops_rare
                drop_modules(("ops_rare",))
        return call

    def identify(self, req):
        b = self.rt.board
        return {"firmware": VERSION, "protocol": PROTOCOL, "board": b.name,
                "device_id": b.unique_id(),
                "mpy": getattr(sys.implementation, "_mpy", None),
                "uptime_ms": self.rt.uptime(), "reset_cause": b.reset_cause(),
                "config_source": self.cfg_source, "config_errors": self.cfg_errors,
                "network": b.network_state(), "safe_mode": False}

    def status(self, req=None):
        """The console's status dict: every part (part()) at once."""
        st = {}
        for k in PARTS:
            st[k] = self.part(k)
        if self.alerts is not None:
            st["alerts"] = self.alerts.status()
        if self.pair is not None:
            st["pair"] = self.pair.status()
        if self.feeds is not None:
            st["feeds"] = self.part("feeds")
        return st

    def part(self, k, brief=False):
        """One part of the status (the key k of status()), built now: the web's handlers read
        the parts one at a time (web.site.Live), so a page or a scrape never holds the whole
        status on the heap. brief: "alerts" gives the alert queue's depth only. None for an
        absent part ("alerts", "pair", "feeds" when not configured)."""
        rt = self.rt
        sen = self.sensing
        if k == "mains":
            mon = sen.monitor
            f = mon.freq
            m = {"v": round(mon.urms, 1), "hz": None if f is None else round(f, 3),
                 "lost": mon.lost, "good": mon.good, "events": sen.events[-5:],
                 "counts": sen.counts}
            if hasattr(mon, "channels"):   # several mains channels: each one's view
                m["channels"] = mon.channels()
                m["alarm"] = sen.phase_alarm
            return m
        if k == "ups":
            bat = self.battery
            ups = {"link": "none", "status": self.snap.tokens(), "charge": round(bat.charge_pct),
                   "runtime": int(bat.runtime_s), "source": bat.charge_source,
                   "alarm": self.snap.alarm}
            con = sen.contacts
            if self.link is not None:
                ups["link"] = self.link.state
            elif self.ups_link is not None:
                ups["link"] = self.ups_link
            elif con is not None:
                ups["link"] = "contacts"
                ups["contacts"] = con.statuses()
                ups["chatter"] = sum(con.deb.chatter)
            if self.feed_ups is not None:
                ups["feeds"] = self.feed_ups.status()
            return ups
        if k == "state":
            sm = self.sm
            h = sm.history()
            return {"name": sm.state, "cause": h[-1][3] if h else "boot", "ponr": sm.ponr,
                    "plan_id": sm.plan_id, "drill": sm.drill}
        if k == "tiers":
            tiers = self.cov.status(rt.now())
            for t in tiers:
                t["phase"] = self.seq.phase(t["name"])
                t["fsd"] = self.nut.fsd(t["name"])
            return tiers
        if k == "plan":
            return self.seq.summary(rt.now())
        if k == "drill":
            return self.seq.report
        if k == "heap":
            return {"free": rt.heap[0], "alloc": rt.heap[1]}
        if k == "loop":
            lag = self.lag
            return {"max_stall_ms": lag.max_ms, "stall_ms_1m": lag.window_ms(),
                    "stalls": lag.stalls}
        if k == "adc":
            adc = sen.adc
            mon = sen.monitor
            return {"overruns": 0 if adc is None else adc.overruns, "ring_ms": sen.ring_ms(),
                    "gaps": mon.gaps, "gap_samples": mon.gap_samples}
        if k == "network":
            net = {"state": rt.board.network_state(), "nut": self.net.serving}
            if self.web is not None:
                net["http"] = getattr(self.web, "serving", False)
            return net
        if k == "nut":
            return {"clients": len(self.nut.conns)}
        if k == "errors":
            return rt.errors
        if k == "uptime_ms":
            return rt.uptime()
        if k == "time":
            return rt.board.time()
        if k == "alerts":
            a = self.alerts
            if a is None:
                return None
            return {"depth": a.depth()} if brief else a.status()
        if k == "pair":
            return None if self.pair is None else self.pair.status()
        if k == "feeds":
            return None if self.feeds is None else self.feeds.status()
        raise KeyError(k)

    def attach_alerts(self, outbox):
        """The alerts Outbox: status reports it, alerts_test needs it."""
        self.alerts = outbox

    def attach_feeds(self, policy):
        """The feeds.FeedPolicy: status reports each feed and server."""
        self.feeds = policy

    feed_ups = None   # the feedups.FeedUps, one UPS per feed (a class default: device heap)

    def attach_feed_ups(self, fu):
        """The feedups.FeedUps (one UPS per feed): the ups part reports each one."""
        self.feed_ups = fu

    def attach_pair(self, link):
        """The pair.link.PairLink: status reports its peer."""
        self.pair = link

    def alerts_test(self, req):
        """Append an alert_test record; every enabled transport delivers it like any alert."""
        if self.alerts is None:
            raise ValueError("no alert transport is enabled (alerts.syslog, alerts.webhook, "
                             "alerts.smtp or alerts.mqtt in the site config)")
        seq = self.rt.log("alert_test", {"by": "console"}, critical=True)
        return {"id": seq, "transports": self.alerts.enabled()}

    def config_get(self, req):
        return {"config": self.rt.cfg, "source": self.cfg_source}

    def log_read(self, req):
        # Only what is on flash is handed out: a record still batched in RAM could be lost to a
        # power cut and its sequence number reused, and the host would keep a different record.
        # the reader loads with the first read, not at boot (saves device heap)
        from sentinel.journalread import first_seq, read, record_dict

        j = self.rt.journal
        j.flush()
        frm = req.get("from_seq", 0)
        n = min(int(req.get("max", 32)), 32)
        return {"records": [record_dict(r) for r in read(j, frm, n)],
                "first": first_seq(j), "last": j.last_seq()}

    def capture_list(self, req):
        return [{"id": cid, "bytes": size} for cid, size in self.rt.journal.list_captures()]

    def drill_start(self, req):
        self.commands.append("drill")
        return {"started": True}

    def time_set(self, req):
        epoch = req.get("epoch")
        if not isinstance(epoch, (int, float)) or epoch < 1600000000:
            raise ValueError("time_set needs epoch (seconds since 1970, after 2020)")
        b = self.rt.board
        b.set_time(epoch)
        return {"time": b.time()}
