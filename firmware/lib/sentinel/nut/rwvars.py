"""The sentinel's NUT actions (NutServer.actions): its writable variables, with their values in
RAM, and the entry points of its instant commands. The command table, and what each command
does through the UPS link or the state machine, is in instcmd.py: that module is imported for
one request and dropped after it (commands are rare; a board without ROMFS would hold its code
in RAM for nothing).

Writable variables (NUT names; values in seconds, as NUT gives them):
  ups.delay.shutdown  12..600     Q1 link: the S<n> delay of shutdown.return (n minutes, .2-.9
                                  below one; default ups.shutdown_delay_min)
  ups.delay.start     60..599940  Q1 link: the R<m> restore delay of shutdown.return (whole
                                  minutes, never 0: servers must come back; default
                                  ups.restore_min)
  sentinel.grace      0..86400    the state machine's grace on battery (policy.grace_s)
A value set is kept until the board restarts (the config holds the lasting one); the plan's own
load-off keeps using the config's ups.shutdown_delay_min and ups.restore_min.

Every SET and INSTCMD, refused ones too, is journalled with the user's name and the result:
records "nut_set" {ups, var, value, user, addr, result} and "nut_instcmd" {ups, cmd, user, addr,
result}; a command sent to the UPS gets a second "nut_instcmd" record with the UPS's answer.
"""
import sys

from sentinel.nut import protocol as P

# (name, kind for GET TYPE, lowest, highest); a link of "q1" is needed for the ups.* ones
_RW = (
    ("sentinel.grace", "RANGE NUMBER", 0, 86400),
    ("ups.delay.shutdown", "RANGE NUMBER", 12, 600),
    ("ups.delay.start", "RANGE NUMBER", 60, 599940),
)


def _int(value):
    """A whole number of seconds from a SET value ("60", "60.0"), or None."""
    try:
        f = float(value)
    except ValueError:
        return None
    return int(f) if f == int(f) else None


class NutActions:
    """cfg: the validated config; ups: the UPS's actions (UpsLink, ContactLoadOff, or None);
    sm: the StateMachine; commands: the control loop's Inputs.commands; log(kind, data,
    critical=False): the journal; spawn: starts a coroutine (asyncio.create_task)."""

    def __init__(self, cfg, ups, sm, commands, log, spawn):
        self.link = cfg["ups"]["link"]
        self.wired = cfg["ups"]["shutdown_output"] is not None
        self.ups = ups
        self.sm = sm
        self.commands = commands
        self.log = log
        self.spawn = spawn
        self.delay_s = cfg["ups"]["shutdown_delay_min"] * 60
        self.start_s = cfg["ups"]["restore_min"] * 60

    def _rows(self):
        return _RW if self.link == "q1" else _RW[:1]

    # -- writable variables ------------------------------------------------------------------

    def rw_vars(self, ups):
        return [(r[0], r[1]) for r in self._rows()]

    def rw_values(self, ups):
        return [("sentinel.grace", self.sm.grace_ms // 1000)] + (
            [("ups.delay.shutdown", self.delay_s), ("ups.delay.start", self.start_s)]
            if self.link == "q1" else [])

    def range(self, ups, var):
        for r in self._rows():
            if r[0] == var:
                return r[2], r[3]
        return None

    def set_var(self, ups, var, value, who):
        v = _int(value)
        rng = self.range(ups, var)
        code = None
        if rng is None:
            code = P.VAR_NOT_SUPPORTED
        elif v is None or not rng[0] <= v <= rng[1]:
            code = P.INVALID_VALUE
        elif var == "sentinel.grace":
            self.sm.grace_ms = v * 1000
        elif var == "ups.delay.shutdown":
            # what S<n> can say: tenths of a minute below one minute, whole minutes above
            self.delay_s = v - v % 6 if v < 60 else v - v % 60
        else:
            self.start_s = v - v % 60
        self.note("nut_set", {"ups": ups, "var": var, "value": value}, who, "ok" if code is None else code)
        return code

    # -- instant commands --------------------------------------------------------------------

    def _instcmd(self, fn, *args):
        # imported for this call and dropped after it (see the module's docstring)
        from sentinel.nut import instcmd
        try:
            return getattr(instcmd, fn)(self, *args)
        finally:
            sys.modules.pop("sentinel.nut.instcmd", None)
            pkg = sys.modules.get("sentinel.nut")
            if pkg is not None and "instcmd" in pkg.__dict__:
                delattr(pkg, "instcmd")

    def cmds(self, ups):
        return self._instcmd("offered")

    def instcmd(self, ups, cmd, param, who):
        return self._instcmd("run", ups, cmd, param, who)

    # -- the journal -------------------------------------------------------------------------

    def note(self, kind, data, who, result):
        """Journal one request: who asked (addr, user) and its result ("ok", "sent" for a UPS
        command in flight, the UPS's answer later, or a NUT error: its word, as upsd names it)."""
        data["user"] = who[1]
        data["addr"] = who[0]
        data["result"] = P.name(result) if isinstance(result, int) else result
        self.log(kind, data, critical=True)

    def refused(self, ups, kind, name, who, code, value=None):
        """The server refused the request before it reached us (ACCESS-DENIED)."""
        if kind == "nut_set":
            data = {"ups": ups, "var": name, "value": value}
        else:
            data = {"ups": ups, "cmd": name}
        self.note(kind, data, who, code)
