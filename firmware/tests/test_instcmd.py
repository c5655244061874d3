# The sentinel's NUT actions (nut/rwvars.py, nut/instcmd.py) behind the real NutServer: which
# commands and writable variables each UPS link offers, what reaches the UPS link and the state
# machine, per-user rights, and the journal record of every request.
import asyncio
import sys

from mpunit import TestCase

from sentinel import config, q1, schema
from sentinel.nut import protocol as P
from sentinel.passwd import hash_password
from sentinel.nut.rwvars import NutActions
from sentinel.nut.server import Conn, NutServer
from sentinel.sequencer import ContactLoadOff
from sentinel.statemachine import SHUTTING_DOWN, StateMachine

Q1_CMDS = ["beeper.toggle", "load.off", "load.on", "sentinel.drill.start", "sentinel.drill.stop",
           "shutdown.return", "shutdown.stop", "test.battery.start.deep",
           "test.battery.start.quick", "test.battery.stop"]


class Provider:
    def ups_names(self):
        return [("apps", "Apps"), ("db", "DB")]

    def status(self, ups):
        return "OL"

    def vars(self, ups):
        return [("battery.charge", 100), ("device.mfr", "Power Sentinel")]


class Link:
    """The part of UpsLink the commands use."""

    def __init__(self):
        self.link_ok = True
        self.sent = []
        self.answer = True

    async def send(self, cmd):
        self.sent.append(cmd)
        return self.answer


def make_cfg(link="q1", **ups):
    ups["link"] = link
    cfg, errs = config.validate({
        "ups": ups,
        "nut": {"users": [
            {"name": "admin", "password": hash_password("adm1n-pw", "x2"), "role": "primary",
             "actions": ["SET", "INSTCMD"]},
            {"name": "mon", "password": hash_password("monpass", "x1")},
            {"name": "beep", "password": hash_password("beeppw", "x3"),
             "instcmds": ["beeper.toggle"]},
            {"name": "all", "password": hash_password("allpw", "x4"), "instcmds": ["ALL"]}]},
        "tiers": [{"name": "apps"}, {"name": "db"}]})
    assert not errs, errs
    return cfg


class Base(TestCase):
    link_kind = "q1"

    def setUp(self):
        self.setup_with(make_cfg(self.link_kind))

    def setup_with(self, cfg, ups=None):
        self.now = 1000
        self.cfg = cfg
        self.link = Link() if ups is None else ups
        self.sm = StateMachine(cfg, self.now)
        self.commands = []
        self.log = []
        self.tasks = []
        self.srv = NutServer(cfg["nut"], Provider(), lambda: self.now)
        self.srv.actions = NutActions(cfg, self.link if cfg["ups"]["link"] == "q1" or ups else None,
                                      self.sm, self.commands,
                                      lambda k, d, critical=False: self.log.append((k, dict(d))),
                                      self.tasks.append)

    def ask(self, c, line):
        return self.srv.handle(c, P.split(line))

    def user(self, name, pw):
        c = Conn("10.0.0.9", 40000, self.now, 512)
        self.srv.conns.append(c)
        self.assertEqual(self.ask(c, "USERNAME " + name), "OK\n")
        self.assertEqual(self.ask(c, "PASSWORD " + pw), "OK\n")
        return c

    def run_tasks(self):
        async def go():
            for t in self.tasks:
                await t
        asyncio.run(go())
        self.tasks.clear()

    def last_log(self):
        return self.log[-1]


class TestQ1Commands(Base):
    def test_list_cmd_offers_what_a_q1_ups_can_do(self):
        c = self.user("mon", "monpass")
        r = self.ask(c, "LIST CMD apps")
        self.assertEqual(r, "BEGIN LIST CMD apps\n" + "".join("CMD apps %s\n" % n for n in Q1_CMDS)
                         + "END LIST CMD apps\n")
        # every command offered can be named in the config's instcmds
        self.assertEqual(sorted(Q1_CMDS), sorted(schema.INSTCMDS[1:]))

    def test_cmddesc_as_upsd(self):
        c = self.user("mon", "monpass")
        self.assertEqual(self.ask(c, "GET CMDDESC apps test.battery.start.deep"),
                         'CMDDESC apps test.battery.start.deep "Start a deep battery test"\n')
        self.assertEqual(self.ask(c, "GET CMDDESC apps load.off"),
                         'CMDDESC apps load.off "Turn off the load immediately"\n')

    def test_each_command_sends_what_nutdrv_qx_sends(self):
        c = self.user("admin", "adm1n-pw")
        want = {"load.off": b"S00R0000\r", "load.on": b"C\r", "shutdown.stop": b"C\r",
                "test.battery.start.quick": b"T\r", "test.battery.start.deep": b"TL\r",
                "test.battery.stop": b"CT\r", "beeper.toggle": b"Q\r",
                "shutdown.return": b"S01R0001\r"}  # the config's 1 min / 1 min
        for cmd, wire in want.items():
            self.assertEqual(self.ask(c, "INSTCMD apps " + cmd), "OK\n")
            self.run_tasks()
            self.assertEqual(self.link.sent[-1], wire, cmd)
            self.assertEqual(self.log[-2][1], {"ups": "apps", "cmd": cmd, "user": "admin",
                                               "addr": "10.0.0.9", "result": "sent"})
            self.assertEqual(self.log[-1][1]["result"], "done")

    def test_a_nak_is_journalled(self):
        c = self.user("admin", "adm1n-pw")
        self.link.answer = False
        self.assertEqual(self.ask(c, "INSTCMD apps beeper.toggle"), "OK\n")
        self.run_tasks()
        self.assertEqual(self.last_log(), ("nut_instcmd", {
            "ups": "apps", "cmd": "beeper.toggle", "user": "admin", "addr": "10.0.0.9",
            "result": "failed"}))

    def test_link_down_fails_at_once(self):
        c = self.user("admin", "adm1n-pw")
        self.link.link_ok = False
        self.assertEqual(self.ask(c, "INSTCMD apps load.off"), "ERR INSTCMD-FAILED\n")
        self.assertEqual(self.link.sent, [])
        self.assertEqual(self.last_log()[1]["result"], "INSTCMD-FAILED")

    def test_rights_per_user_and_refusals_are_journalled(self):
        mon = self.user("mon", "monpass")
        self.assertEqual(self.ask(mon, "INSTCMD apps load.off"), "ERR ACCESS-DENIED\n")
        self.assertEqual(self.last_log(), ("nut_instcmd", {
            "ups": "apps", "cmd": "load.off", "user": "mon", "addr": "10.0.0.9",
            "result": "ACCESS-DENIED"}))
        beep = self.user("beep", "beeppw")
        self.assertEqual(self.ask(beep, "INSTCMD apps load.off"), "ERR ACCESS-DENIED\n")
        self.assertEqual(self.ask(beep, "INSTCMD apps beeper.toggle"), "OK\n")
        every = self.user("all", "allpw")
        self.assertEqual(self.ask(every, "INSTCMD apps test.battery.stop"), "OK\n")
        self.assertEqual(self.ask(every, "SET VAR apps sentinel.grace 5"), "ERR ACCESS-DENIED\n")
        self.assertEqual(self.last_log()[0], "nut_set")
        self.run_tasks()
        self.assertEqual(self.link.sent, [b"Q\r", b"CT\r"])

    def test_writable_variables_as_upsd_serves_nutdrv_qx(self):
        c = self.user("mon", "monpass")
        self.assertEqual(self.ask(c, "LIST RW apps"),
                         'BEGIN LIST RW apps\nRW apps sentinel.grace "60"\n'
                         'RW apps ups.delay.shutdown "60"\nRW apps ups.delay.start "60"\n'
                         'END LIST RW apps\n')
        self.assertEqual(self.ask(c, "GET TYPE apps ups.delay.shutdown"),
                         "TYPE apps ups.delay.shutdown RW RANGE NUMBER\n")
        self.assertEqual(self.ask(c, "GET TYPE apps battery.charge"),
                         "TYPE apps battery.charge NUMBER\n")
        self.assertEqual(self.ask(c, "LIST RANGE apps ups.delay.shutdown"),
                         'BEGIN LIST RANGE apps ups.delay.shutdown\n'
                         'RANGE apps ups.delay.shutdown "12" "600"\n'
                         'END LIST RANGE apps ups.delay.shutdown\n')
        self.assertEqual(self.ask(c, "GET DESC apps ups.delay.start"),
                         'DESC apps ups.delay.start "Interval to wait before (re)starting the '
                         'load (seconds)"\n')
        self.assertIn('VAR apps ups.delay.start "60"\n', self.ask(c, "LIST VAR apps"))

    def test_set_delays_shape_shutdown_return(self):
        c = self.user("admin", "adm1n-pw")
        self.assertEqual(self.ask(c, "SET VAR apps ups.delay.shutdown 30"), "OK\n")
        self.assertEqual(self.ask(c, "SET VAR apps ups.delay.start 180"), "OK\n")
        self.assertEqual(self.last_log(), ("nut_set", {
            "ups": "apps", "var": "ups.delay.start", "value": "180", "user": "admin",
            "addr": "10.0.0.9", "result": "ok"}))
        self.assertEqual(self.ask(c, "INSTCMD apps shutdown.return"), "OK\n")
        self.run_tasks()
        self.assertEqual(self.link.sent[-1], b"S.5R0003\r")
        # 130 s cannot be said: whole minutes above one minute, as nutdrv_qx rounds
        self.assertEqual(self.ask(c, "SET VAR apps ups.delay.shutdown 130"), "OK\n")
        self.assertEqual(self.ask(c, "GET VAR apps ups.delay.shutdown"),
                         'VAR apps ups.delay.shutdown "120"\n')
        for bad in ("601", "11", "abc", "30.5"):
            self.assertEqual(self.ask(c, "SET VAR apps ups.delay.shutdown " + bad),
                             "ERR INVALID-VALUE\n", bad)
        self.assertEqual(self.ask(c, "SET VAR apps ups.delay.start 0"), "ERR INVALID-VALUE\n")

    def test_set_grace_changes_the_state_machine(self):
        c = self.user("admin", "adm1n-pw")
        self.assertEqual(self.ask(c, "SET VAR apps sentinel.grace 5"), "OK\n")
        self.assertEqual(self.sm.grace_ms, 5000)
        self.assertEqual(self.ask(c, "GET VAR apps sentinel.grace"),
                         'VAR apps sentinel.grace "5"\n')
        self.assertEqual(self.ask(c, "SET VAR apps sentinel.grace 86401"), "ERR INVALID-VALUE\n")
        self.assertEqual(self.ask(c, "SET VAR apps device.mfr x"), "ERR READONLY\n")

    def test_drill_through_the_state_machine(self):
        c = self.user("admin", "adm1n-pw")
        self.assertEqual(self.ask(c, "INSTCMD apps sentinel.drill.stop"), "ERR INSTCMD-FAILED\n")
        self.assertEqual(self.ask(c, "INSTCMD apps sentinel.drill.start"), "OK\n")
        self.assertEqual(self.commands, ["drill"])
        from sentinel.statemachine import Inputs
        self.sm.update(self.now, Inputs(commands=self.commands))
        self.assertEqual((self.sm.state, self.sm.drill), (SHUTTING_DOWN, True))
        self.assertEqual(self.ask(c, "INSTCMD apps sentinel.drill.start"), "ERR INSTCMD-FAILED\n")
        self.assertEqual(self.ask(c, "INSTCMD apps sentinel.drill.stop"), "OK\n")
        self.sm.update(self.now + 100, Inputs(commands=self.commands))
        self.assertEqual((self.sm.state, self.sm.drill), ("ONLINE", False))

    def test_the_command_module_is_not_kept_loaded(self):
        c = self.user("admin", "adm1n-pw")
        self.ask(c, "LIST CMD apps")
        self.ask(c, "INSTCMD apps beeper.toggle")
        self.assertNotIn("sentinel.nut.instcmd", sys.modules)


class TestOtherLinks(Base):
    def test_no_link_offers_the_sentinel_s_own(self):
        self.setup_with(make_cfg("none"))
        c = self.user("admin", "adm1n-pw")
        self.assertEqual(self.ask(c, "LIST CMD apps"), "BEGIN LIST CMD apps\n"
                         "CMD apps sentinel.drill.start\nCMD apps sentinel.drill.stop\n"
                         "END LIST CMD apps\n")
        self.assertEqual(self.ask(c, "INSTCMD apps load.off"), "ERR CMD-NOT-SUPPORTED\n")
        self.assertEqual(self.ask(c, "LIST RW apps"),
                         'BEGIN LIST RW apps\nRW apps sentinel.grace "60"\nEND LIST RW apps\n')
        self.assertEqual(self.ask(c, "SET VAR apps ups.delay.start 120"),
                         "ERR VAR-NOT-SUPPORTED\n")

    def test_a_wired_contact_ups_offers_shutdown_return_as_its_pulse(self):
        pulses = []

        async def pulse():
            pulses.append(1)
            return True
        self.setup_with(make_cfg("contacts", shutdown_output=3), ContactLoadOff(pulse))
        c = self.user("admin", "adm1n-pw")
        self.assertEqual(self.ask(c, "LIST CMD apps"), "BEGIN LIST CMD apps\n"
                         "CMD apps sentinel.drill.start\nCMD apps sentinel.drill.stop\n"
                         "CMD apps shutdown.return\nEND LIST CMD apps\n")
        self.assertEqual(self.ask(c, "INSTCMD apps shutdown.return"), "OK\n")
        self.run_tasks()
        self.assertEqual(pulses, [1])
        self.assertEqual(self.last_log()[1]["result"], "done")
