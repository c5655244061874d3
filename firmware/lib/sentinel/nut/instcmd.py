"""The NUT instant commands the sentinel offers, and what each one does. Imported for one
request by rwvars.NutActions and dropped after it.

A command is offered only where the sentinel can perform it:
  Q1 (Megatec) link   the bytes NUT's own nutdrv_qx (megatec) sends for it: load.off S00R0000,
                      load.on and shutdown.stop C, shutdown.return S<n>R<m> (from
                      ups.delay.shutdown and ups.delay.start), test.battery.start.quick T,
                      test.battery.start.deep TL, test.battery.stop CT, beeper.toggle Q
  contact UPS with ups.shutdown_output wired
                      shutdown.return only: the pulse on its shutdown input (such a UPS cuts and
                      restores its load with delays of its own); contacts cannot do the rest
  always              sentinel.drill.start / sentinel.drill.stop: the console's drill, through
                      the state machine (refused where the machine would refuse it)
A UPS command is answered OK once it is handed to a working link (ERR INSTCMD-FAILED when the
link is down); the UPS's answer (a NAK, or no answer) is journalled when it comes.
"""
from sentinel import q1
from sentinel.nut import protocol as P

_Q1 = 1     # a Q1 link
_PULSE = 2  # a contact UPS with its shutdown output wired
_SELF = 4   # the sentinel itself

# NUT name, where it is offered, what it sends (Q1 bytes) or asks the state machine
CMDS = (
    ("beeper.toggle", _Q1, q1.CMD_BEEPER),
    ("load.off", _Q1, q1.CMD_LOAD_OFF),
    ("load.on", _Q1, q1.CMD_CANCEL),
    ("sentinel.drill.start", _SELF, "drill"),
    ("sentinel.drill.stop", _SELF, "drill_stop"),
    ("shutdown.return", _Q1 | _PULSE, None),
    ("shutdown.stop", _Q1, q1.CMD_CANCEL),
    ("test.battery.start.deep", _Q1, q1.CMD_TEST_LOW),
    ("test.battery.start.quick", _Q1, q1.CMD_TEST),
    ("test.battery.stop", _Q1, q1.CMD_TEST_CANCEL),
)


def _where(act):
    if act.ups is None:
        return _SELF
    return _SELF | (_Q1 if act.link == "q1" else _PULSE)


def offered(act):
    w = _where(act)
    return [c[0] for c in CMDS if c[1] & w]


def _minutes(delay_s):
    # ups.delay.shutdown is kept at what S<n> can say: n tenths of a minute, or whole minutes
    return delay_s // 6 / 10 if delay_s < 60 else delay_s // 60


async def _answer(act, aw, data, who):
    try:
        ok = bool(await aw)
    except Exception:
        ok = False
    act.note("nut_instcmd", data, who, "done" if ok else "failed")


def run(act, ups, cmd, param, who):
    """Perform `cmd` (a name offered() gave; `param` is not used by any of them): None when done
    or handed to the UPS link, else a NUT error code."""
    w = _where(act)
    row = None
    for c in CMDS:
        if c[0] == cmd and c[1] & w:
            row = c
    data = {"ups": ups, "cmd": cmd}
    if row is None:
        act.note("nut_instcmd", data, who, P.CMD_NOT_SUPPORTED)
        return P.CMD_NOT_SUPPORTED
    if row[1] == _SELF:
        if not act.sm.allowed(row[2]):
            act.note("nut_instcmd", data, who, P.INSTCMD_FAILED)
            return P.INSTCMD_FAILED
        act.commands.append(row[2])
        act.note("nut_instcmd", data, who, "ok")
        return None
    ups_act = act.ups
    if w & _Q1:
        if not ups_act.link_ok:
            act.note("nut_instcmd", data, who, P.INSTCMD_FAILED)
            return P.INSTCMD_FAILED
        aw = ups_act.send(row[2] or q1.format_shutdown_restore(_minutes(act.delay_s),
                                                                act.start_s // 60))
    else:
        aw = ups_act.shutdown_restore(act.delay_s // 60, act.start_s // 60)
    act.note("nut_instcmd", data, who, "sent")
    if hasattr(aw, "send") or hasattr(aw, "__await__"):
        act.spawn(_answer(act, aw, dict(data), who))
    return None
