"""Live audit of the shutdown plan: is every configured server actually listening?

A server protects itself only if its upsmon is logged in to its tier on the sentinel. Coverage
compares each tier's configured hosts with NutServer.logged_in(tier) (by address) and keeps, per
host, since when it has been missing. The first time a host has been missing for `warn_after_ms`
a warning record is written, and another when it comes back, so the journal shows every gap in
the plan without repeating itself every poll.

Call update(now_ms) every few seconds (cheap: one logged_in() per tier). Pass quiet=True while a
shutdown or power-on is running: hosts are then missing on purpose, so no warnings are written
(the "since" times still track, and no "back" record follows for a warning never written).

Outputs:
  status(now_ms) -> [{"name": tier, "connected": [{"host", "addr"}], "missing": [{"host",
                      "since_s"}], "unknown": [addr, ...]}]    for the console; a host that
                      lists the feeds powering it (two-feed sites) also has "feeds"
  nut_vars(tier) -> [("sentinel.coverage.connected", "web1,web2"),
                     ("sentinel.coverage.missing", "db2,db3"), ...]   for the tier's NUT UPS
"""
WARN_AFTER_MS = 30000  # upsmon reconnects within a few POLLFREQ (5 s): shorter gaps are normal


def norm_addr(a):
    """An address as the NUT server reports it, comparable with the config: IPv4-mapped IPv6
    ("::ffff:10.0.0.5") becomes the IPv4 form; names compare case-insensitively."""
    a = a.lower()
    if a.startswith("::ffff:") and "." in a:
        return a[7:]
    return a


def logged_in_addrs(nut, tier):
    """Normalised addresses of the clients logged in to `tier` (duplicates kept)."""
    return [norm_addr(a) for a, _u in nut.logged_in(tier)]


class Coverage:
    """cfg: the validated config (its "tiers"); nut: logged_in(tier); journal_fn(type, data, now_ms,
    critical=bool) (Journal.append fits), or None; now_ms: when monitoring starts (every host counts
    as missing from then until it is seen)."""

    def __init__(self, cfg, nut, journal_fn=None, now_ms=0, warn_after_ms=WARN_AFTER_MS):
        self.nut = nut
        self.journal = journal_fn
        self.warn_after_ms = warn_after_ms
        # [(tier name, [[host, addr, since_ms or None, warned, feeds], ...]), ...]
        self.tiers = []
        for t in cfg["tiers"]:
            hosts = []
            for h in t["hosts"]:
                hosts.append([h["name"], norm_addr(h["address"]), now_ms, False,
                              h.get("feeds") or None])
            self.tiers.append((t["name"], hosts))
        self._unknown = {}  # tier -> [addr] logged in but not configured for that tier
        self.warnings = 0

    def _log(self, t, data, now):
        self.warnings += 1
        if self.journal is not None:
            # a type name the journal does not know is stored as "other" with data["_t"] = t
            self.journal(t, data, now, critical=False)

    def update(self, now_ms, quiet=False):
        """Refresh from the NUT server. Returns the number of records written."""
        n = 0
        for tname, hosts in self.tiers:
            addrs = logged_in_addrs(self.nut, tname)
            for h in hosts:
                present = h[1] in addrs
                if present:
                    if h[2] is not None:
                        if h[3]:
                            self._log("coverage_back", {"tier": tname,
                                               "host": h[0], "addr": h[1],
                                               "missing_ms": now_ms - h[2]}, now_ms)
                            n += 1
                        h[2] = None
                        h[3] = False
                else:
                    if h[2] is None:
                        h[2] = now_ms
                    if not h[3] and not quiet and now_ms - h[2] >= self.warn_after_ms:
                        h[3] = True
                        self._log("coverage_missing", {"tier": tname,
                                              "host": h[0], "addr": h[1],
                                              "missing_ms": now_ms - h[2]}, now_ms)
                        n += 1
            known = [h[1] for h in hosts]
            self._unknown[tname] = [a for a in addrs if a not in known]
        return n

    def missing(self, tier):
        """Names of the configured hosts of `tier` not logged in at the last update()."""
        for tname, hosts in self.tiers:
            if tname == tier:
                return [h[0] for h in hosts if h[2] is not None]
        return []

    def connected(self, tier):
        for tname, hosts in self.tiers:
            if tname == tier:
                return [h[0] for h in hosts if h[2] is None]
        return []

    def status(self, now_ms):
        out = []
        for tname, hosts in self.tiers:
            con = []
            mis = []
            for h in hosts:
                if h[2] is None:
                    e = {"host": h[0], "addr": h[1]}
                    con.append(e)
                else:
                    e = {"host": h[0], "since_s": (now_ms - h[2]) // 1000}
                    mis.append(e)
                if h[4]:
                    e["feeds"] = h[4]
            out.append({"name": tname, "connected": con, "missing": mis,
                        "unknown": list(self._unknown.get(tname, ()))})
        return out

    def nut_vars(self, tier):
        """sentinel.coverage.* variables for the NUT UPS of `tier`."""
        con = self.connected(tier)
        mis = self.missing(tier)
        return [("sentinel.coverage.connected", ",".join(con)),
                ("sentinel.coverage.expected", len(con) + len(mis)),
                ("sentinel.coverage.missing", ",".join(mis))]

    def all_connected(self):
        for _t, hosts in self.tiers:
            for h in hosts:
                if h[2] is not None:
                    return False
        return True
