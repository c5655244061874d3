# NUT server logic without sockets: NutServer.handle() on Conn objects, FSD, logins, shedding.
import asyncio

from mpunit import TestCase

from sentinel import config, schema
from sentinel.nut import protocol as P
from sentinel.nut import server
from sentinel.nut.auth import LoginLimiter
from sentinel.passwd import hash_password
from sentinel.nut.server import Conn, NutServer


class Clock:
    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t


class Provider:
    def __init__(self):
        self.st = {"apps": "OL", "databases": "OB DISCHRG", "storage": None}
        self.stale = set()
        self.v = {
            "apps": [("battery.charge", "100"), ("sentinel.state", "normal"),
                     ("sentinel.note", 'say "hi" #1'), ("input.voltage", 230.5),
                     ("device.mfr", "Power Sentinel")],
            "databases": [("battery.charge", 55)],
            "storage": [("device.mfr", "Power Sentinel")],
        }
        self.calls = []
        self.set_result = None

    def ups_names(self):
        return [("apps", "Apps tier"), ("databases", "DB"), ("storage", "")]

    def status(self, ups):
        return self.st[ups]

    def vars(self, ups):
        return None if ups in self.stale else self.v[ups]

    def rw_vars(self, ups):
        return [("sentinel.state", "STRING:8"), ("battery.charge", "NUMBER")] if ups == "apps" else []

    def cmds(self, ups):
        return ["shutdown.return", "load.off"] if ups == "apps" else []

    def set_var(self, ups, var, value):
        self.calls.append(("SET", ups, var, value))
        return self.set_result

    def instcmd(self, ups, cmd, param):
        self.calls.append(("INSTCMD", ups, cmd, param))
        return None


def nut_cfg(**kw):
    """The "nut" section as config.validate() makes it from kw: what the sentinel hands over."""
    cfg, errs = config.validate({"nut": kw})
    assert not errs, errs
    return cfg["nut"]


def server_cfg(**kw):
    """nut_cfg(**kw) with the test users."""
    cfg = nut_cfg(**kw)
    cfg["users"] = users()
    return cfg


def users():
    us = nut_cfg(users=[
        {"name": "mon", "password": hash_password("monpass", "x1")},
        {"name": "admin", "password": hash_password("adm1n-pw", "x2"), "role": "primary",
         "actions": ["SET", "INSTCMD"]},
        {"name": "ops", "password": hash_password("opspw", "x3"), "actions": ["INSTCMD"]},
    ])["users"]
    # stored passwords the validator refuses: the server must still never match them
    us.append(dict(us[0], name="plain", password="plainpw", role="primary"))
    us.append(dict(us[0], name="nopw", password=""))
    return us


class Writer:
    """The part of a StreamWriter that NutServer._feed uses."""

    def __init__(self):
        self.out = b""

    def write(self, data):
        self.out += data

    async def drain(self):
        pass


class Base(TestCase):
    def setUp(self):
        self.clock = Clock()
        self.prov = Provider()
        self.srv = NutServer(server_cfg(max_conns=3), self.prov, self.clock)
        self.events = []
        self.srv.on_logout = lambda ups, c: self.events.append(("logout", ups, c))
        self.srv.on_login = lambda ups, c: self.events.append(("login", ups, c))
        self.srv.on_fsd = lambda ups, c: self.events.append(("fsd", ups, c))

    def conn(self, addr="10.0.0.5"):
        c = Conn(addr, 40000, self.clock(), 512)
        self.srv.conns.append(c)
        return c

    def ask(self, c, line):
        return self.srv.handle(c, P.split(line))

    def login(self, user, pw, ups="apps", addr="10.0.0.5"):
        c = self.conn(addr)
        self.assertEqual(self.ask(c, "USERNAME " + user), "OK\n")
        self.assertEqual(self.ask(c, "PASSWORD " + pw), "OK\n")
        if ups:
            self.assertEqual(self.ask(c, "LOGIN " + ups), "OK\n")
        return c


class TestReads(Base):
    def test_status_and_vars(self):
        c = self.conn()
        self.assertEqual(self.ask(c, "GET VAR apps ups.status"), 'VAR apps ups.status "OL"\n')
        self.assertEqual(self.ask(c, "GET VAR Apps Input.Voltage"), 'VAR Apps Input.Voltage "230.5"\n')
        self.assertEqual(self.ask(c, "GET VAR apps sentinel.note"),
                         'VAR apps sentinel.note "say \\"hi\\" \\#1"\n')
        self.assertEqual(self.ask(c, "GET VAR nope ups.status"), "ERR UNKNOWN-UPS\n")
        self.assertEqual(self.ask(c, "GET VAR apps nope"), "ERR VAR-NOT-SUPPORTED\n")

    def test_buzzwords_not_supported(self):
        c = self.conn()
        self.assertEqual(self.ask(c, "GET VAR apps ups.mode.buzzwords"), "ERR VAR-NOT-SUPPORTED\n")
        self.assertEqual(self.ask(c, "GET VAR apps experimental.ups.mode.buzzwords"),
                         "ERR VAR-NOT-SUPPORTED\n")

    def test_wait_before_first_reading(self):
        c = self.conn()
        self.assertEqual(self.ask(c, "GET VAR storage ups.status"), 'VAR storage ups.status "WAIT"\n')

    def test_stale(self):
        c = self.conn()
        self.prov.stale.add("apps")
        for q in ("GET VAR apps ups.status", "LIST VAR apps", "GET NUMLOGINS apps",
                  "GET TYPE apps battery.charge", "LIST RW apps", "LIST CMD apps"):
            self.assertEqual(self.ask(c, q), "ERR DATA-STALE\n", q)
        self.assertEqual(self.ask(c, "GET UPSDESC apps"), 'UPSDESC apps "Apps tier"\n')
        self.assertEqual(self.ask(c, "LIST CLIENT apps"),
                         "BEGIN LIST CLIENT apps\nEND LIST CLIENT apps\n")
        self.prov.stale.discard("apps")
        self.assertEqual(self.ask(c, "GET VAR apps ups.status"), 'VAR apps ups.status "OL"\n')

    def test_list_var_sorted_with_status(self):
        c = self.conn()
        r = self.ask(c, "LIST VAR apps").split("\n")
        self.assertEqual(r[0], "BEGIN LIST VAR apps")
        self.assertEqual(r[-2], "END LIST VAR apps")
        names = [line.split(" ")[2] for line in r[1:-2]]
        self.assertEqual(names, sorted(names))
        self.assertIn("ups.status", names)

    def test_list_ups_rw_cmd_type(self):
        c = self.conn()
        self.assertEqual(self.ask(c, "LIST UPS"), 'BEGIN LIST UPS\nUPS apps "Apps tier"\n'
                         'UPS databases "DB"\nUPS storage "Description unavailable"\nEND LIST UPS\n')
        self.assertEqual(self.ask(c, "GET UPSDESC storage"), 'UPSDESC storage "Unavailable"\n')
        self.assertEqual(self.ask(c, "LIST RW apps"), 'BEGIN LIST RW apps\n'
                         'RW apps battery.charge "100"\nRW apps sentinel.state "normal"\n'
                         'END LIST RW apps\n')
        self.assertEqual(self.ask(c, "LIST CMD apps"), "BEGIN LIST CMD apps\nCMD apps load.off\n"
                         "CMD apps shutdown.return\nEND LIST CMD apps\n")
        self.assertEqual(self.ask(c, "GET TYPE apps sentinel.state"),
                         "TYPE apps sentinel.state RW STRING:8\n")
        self.assertEqual(self.ask(c, "GET TYPE apps device.mfr"), "TYPE apps device.mfr NUMBER\n")

    def test_starttls_and_unknown(self):
        c = self.conn()
        self.assertEqual(self.ask(c, "STARTTLS"), "ERR FEATURE-NOT-CONFIGURED\n")
        self.assertEqual(self.ask(c, "FROB"), "ERR UNKNOWN-COMMAND\n")
        self.assertEqual(self.srv.handle(c, []), "ERR UNKNOWN-COMMAND\n")


class TestAuthAndFsd(Base):
    def test_secondary_login_only(self):
        c = self.login("mon", "monpass")
        self.assertEqual(self.ask(c, "FSD apps"), "ERR ACCESS-DENIED\n")
        self.assertEqual(self.ask(c, "PRIMARY apps"), "ERR ACCESS-DENIED\n")
        self.assertEqual(self.ask(c, "SET VAR apps sentinel.state x"), "ERR ACCESS-DENIED\n")
        self.assertFalse(self.srv.fsd("apps"))
        self.assertEqual(self.srv.logged_in("apps"), [("10.0.0.5", "mon")])
        self.assertEqual(self.events, [("login", "apps", ("10.0.0.5", "mon", "LOGIN"))])

    def test_login_name_canonical_and_counted(self):
        self.login("mon", "monpass", "APPS")
        self.login("mon", "monpass", "apps", "10.0.0.6")
        self.assertEqual(self.srv.numlogins("apps"), 2)
        c = self.conn()
        self.assertEqual(self.ask(c, "GET NUMLOGINS Apps"), "NUMLOGINS Apps 2\n")
        self.assertEqual(self.ask(c, "LIST CLIENT apps"), "BEGIN LIST CLIENT apps\n"
                         "CLIENT apps 10.0.0.6\nCLIENT apps 10.0.0.5\nEND LIST CLIENT apps\n")

    def test_primary_fsd_prefix_and_clear(self):
        c = self.login("admin", "adm1n-pw", None)
        self.assertEqual(self.ask(c, "PRIMARY storage"), "OK PRIMARY-GRANTED\n")
        self.assertEqual(self.ask(c, "MASTER storage"), "OK MASTER-GRANTED\n")
        self.assertEqual(self.ask(c, "FSD databases"), "OK FSD-SET\n")
        self.assertEqual(self.events[-1], ("fsd", "databases", ("10.0.0.5", "admin", "FSD")))
        self.assertEqual(self.ask(c, "GET VAR databases ups.status"),
                         'VAR databases ups.status "FSD OB DISCHRG"\n')
        self.assertIn('VAR databases ups.status "FSD OB DISCHRG"\n', self.ask(c, "LIST VAR databases"))
        self.srv.set_fsd("DATABASES", False)  # not a latch: the sentinel clears it
        self.assertEqual(self.ask(c, "GET VAR databases ups.status"),
                         'VAR databases ups.status "OB DISCHRG"\n')
        self.srv.set_fsd("storage", True)
        self.assertEqual(self.ask(c, "GET VAR storage ups.status"), 'VAR storage ups.status "FSD WAIT"\n')
        with self.assertRaises(ValueError):
            self.srv.set_fsd("nope", True)

    def test_fsd_for_some_hosts_only(self):
        # the feed policy: only the servers whose feeds are all lost see FSD on their tier
        gone = self.login("mon", "monpass", "apps", "10.0.0.6")
        stays = self.login("mon", "monpass", "apps", "10.0.0.5")
        mapped = self.login("mon", "monpass", "apps", "::ffff:10.0.0.7")
        self.srv.set_fsd_hosts("APPS", ["10.0.0.6", "10.0.0.7"])
        self.assertEqual(self.ask(gone, "GET VAR apps ups.status"), 'VAR apps ups.status "FSD OL"\n')
        self.assertIn('ups.status "FSD OL"', self.ask(mapped, "LIST VAR apps"))
        self.assertEqual(self.ask(stays, "GET VAR apps ups.status"), 'VAR apps ups.status "OL"\n')
        self.assertIn('ups.status "OL"', self.ask(stays, "LIST VAR apps"))
        self.assertFalse(self.srv.fsd("apps"))  # the tier itself is not shut down
        self.srv.set_fsd_hosts("apps", ())
        self.assertEqual(self.ask(gone, "GET VAR apps ups.status"), 'VAR apps ups.status "OL"\n')
        with self.assertRaises(ValueError):
            self.srv.set_fsd_hosts("nope", ["10.0.0.6"])

    def test_plain_or_empty_stored_password_never_matches(self):
        for user, pw in (("plain", "plainpw"), ("nopw", ""), ("nopw", "x"), ("ghost", "x")):
            c = self.conn()
            self.ask(c, "USERNAME " + user)
            self.ask(c, 'PASSWORD "%s"' % pw)
            self.assertEqual(self.ask(c, "LOGIN apps"), "ERR ACCESS-DENIED\n", user)
        self.assertEqual(self.srv.numlogins("apps"), 0)
        self.assertEqual(self.srv.stats["auth_fail"], 4)

    def test_required_order(self):
        c = self.conn()
        self.assertEqual(self.ask(c, "LOGIN apps"), "ERR USERNAME-REQUIRED\n")
        self.ask(c, "USERNAME mon")
        self.assertEqual(self.ask(c, "FSD apps"), "ERR PASSWORD-REQUIRED\n")
        self.ask(c, "PASSWORD monpass")
        self.assertEqual(self.ask(c, "LOGIN apps"), "OK\n")
        self.assertEqual(self.ask(c, "LOGIN apps"), "ERR ALREADY-LOGGED-IN\n")
        self.assertEqual(self.ask(c, "USERNAME x"), "ERR ALREADY-SET-USERNAME\n")
        self.assertEqual(self.ask(c, "LOGOUT"), "OK Goodbye\n")
        self.assertTrue(c.quit)

    def test_every_command_login_rule_and_argument_count(self):
        # upsd 2.8.0's answers, command by command: which need USERNAME/PASSWORD first (checked
        # before the arguments), and how many words each takes (case-insensitive names)
        c = self.conn()
        for cmd in ("login", "PRIMARY", "MASTER", "FSD", "SET", "INSTCMD"):
            self.assertEqual(self.ask(c, cmd), "ERR USERNAME-REQUIRED\n", cmd)
        for line in ("VER x", "NETVER x", "PROTVER x", "HELP x", "LOGOUT x", "USERNAME",
                     "USERNAME a b", "PASSWORD", "PASSWORD a b", "GET", "LIST"):
            self.assertEqual(self.ask(c, line), "ERR INVALID-ARGUMENT\n", line)
        self.assertEqual(self.ask(c, "STARTTLS x y"), "ERR FEATURE-NOT-CONFIGURED\n")
        self.assertEqual(self.ask(c, "netver"), "1.3\n")
        self.assertEqual(self.ask(c, "PROTVER"), "1.3\n")
        self.assertEqual(self.ask(c, "Help"), P.HELP_LINE + "\n")
        self.assertEqual(self.ask(c, "VER"), P.VERSION_LINE + "\n")
        self.ask(c, "USERNAME admin")
        self.ask(c, "PASSWORD adm1n-pw")
        for line in ("LOGIN", "LOGIN apps x", "PRIMARY", "MASTER apps x", "FSD", "SET VAR",
                     "INSTCMD apps"):
            self.assertEqual(self.ask(c, line), "ERR INVALID-ARGUMENT\n", line)
        self.assertEqual(self.ask(c, "master apps"), "OK MASTER-GRANTED\n")
        self.assertEqual(self.ask(c, "PRIMARY apps"), "OK PRIMARY-GRANTED\n")
        self.assertEqual(self.srv.stats["auth_fail"], 0)
        self.assertFalse(c.quit)

    def test_failed_logins_delay_then_success_clears(self):
        for _ in range(3):
            c = self.conn("10.9.9.9")
            self.ask(c, "USERNAME mon")
            self.ask(c, "PASSWORD guess")
            self.assertEqual(self.ask(c, "LOGIN apps"), "ERR ACCESS-DENIED\n")
        c = self.conn("10.9.9.9")
        self.ask(c, "USERNAME mon")
        self.ask(c, "PASSWORD monpass")
        self.assertEqual(self.srv.auth_delay_ms(c, ["LOGIN", "apps"]), 500)
        self.assertEqual(self.srv.auth_delay_ms(c, ["GET", "VAR"]), 0)  # reads never wait
        other = self.conn("10.0.0.7")
        self.ask(other, "USERNAME mon")
        self.ask(other, "PASSWORD x")
        self.assertEqual(self.srv.auth_delay_ms(other, ["LOGIN", "apps"]), 0)
        self.assertEqual(self.ask(c, "LOGIN apps"), "OK\n")
        self.assertEqual(self.srv.auth_delay_ms(c, ["LOGIN", "apps"]), 0)

    def test_set_and_instcmd(self):
        c = self.login("admin", "adm1n-pw", None)
        self.assertEqual(self.ask(c, "SET VAR apps sentinel.state drill"), "OK\n")
        self.assertEqual(self.prov.calls[-1], ("SET", "apps", "sentinel.state", "drill"))
        self.assertEqual(self.ask(c, "SET VAR apps sentinel.state toolongvalue"), "ERR TOO-LONG\n")
        self.assertEqual(self.ask(c, "SET VAR apps device.mfr x"), "ERR READONLY\n")
        self.prov.set_result = P.INVALID_VALUE
        self.assertEqual(self.ask(c, "SET VAR apps battery.charge x"), "ERR INVALID-VALUE\n")
        self.assertEqual(self.ask(c, "INSTCMD apps LOAD.OFF"), "OK\n")
        self.assertEqual(self.prov.calls[-1], ("INSTCMD", "apps", "load.off", None))
        self.assertEqual(self.ask(c, "INSTCMD apps shutdown.return 30"), "OK\n")
        self.assertEqual(self.prov.calls[-1], ("INSTCMD", "apps", "shutdown.return", "30"))
        self.assertEqual(self.ask(c, "INSTCMD apps beeper.toggle"), "ERR CMD-NOT-SUPPORTED\n")

    def test_instcmd_action_on_a_default_role(self):
        c = self.login("ops", "opspw", None)
        self.assertEqual(self.ask(c, "INSTCMD apps load.off"), "OK\n")
        self.assertEqual(self.ask(c, "INSTCMD apps shutdown.return"), "OK\n")
        self.assertEqual(self.ask(c, "SET VAR apps sentinel.state x"), "ERR ACCESS-DENIED\n")
        self.assertEqual(self.ask(c, "FSD apps"), "ERR ACCESS-DENIED\n")
        self.assertEqual(self.ask(c, "LOGIN apps"), "OK\n")  # the schema's default role

    def test_rights_are_the_schemas(self):
        # every role the schema allows has its rights, and none it refuses; every right a
        # command checks comes from a role or from the schema's "actions"
        self.assertEqual(sorted(server._ROLE_ACTIONS), sorted(schema.field("nut.users.role")["c"]))
        granted = set(schema.field("nut.users.actions")["c"])
        for acts in server._ROLE_ACTIONS.values():
            granted.update(acts)
        for e in server._COMMANDS.values():
            if e[4] is not None:
                self.assertIn(e[4], granted)

    def test_defaults_from_the_schema(self):
        srv = NutServer(config.defaults()["nut"], self.prov, self.clock)
        self.assertEqual(srv.max_conns, schema.field("nut.max_conns")["d"])
        self.assertEqual(srv.idle_ms, schema.field("nut.idle_timeout_s")["d"] * 1000)
        self.assertEqual(srv.users, {})

    def test_tracking(self):
        c = self.login("admin", "adm1n-pw", None)
        self.assertEqual(self.ask(c, "GET TRACKING"), "OFF\n")
        self.assertEqual(self.ask(c, "SET TRACKING ON"), "OK\n")
        r = self.ask(c, "INSTCMD apps load.off")
        self.assertTrue(r.startswith("OK TRACKING "))
        tid = r.split()[2]
        self.assertEqual(len(tid), 36)
        self.assertEqual(self.ask(c, "GET TRACKING " + tid), "SUCCESS\n")
        self.assertEqual(self.ask(c, "GET TRACKING nope"), "ERR UNKNOWN\n")


class TestConnections(Base):
    def test_drop_reports_logout_once(self):
        c = self.login("mon", "monpass", "databases")
        self.srv._drop(c, "closed")
        self.srv._drop(c, "idle")
        logouts = [e for e in self.events if e[0] == "logout"]
        self.assertEqual(logouts, [("logout", "databases", ("10.0.0.5", "mon", "closed"))])
        self.assertEqual(self.srv.logged_in("databases"), [])
        self.assertEqual(self.srv.conns, [])

    def test_shed_oldest_idle_unauthenticated_never_logged_in(self):
        a = self.login("mon", "monpass", "apps")
        self.clock.t += 10
        b = self.conn("10.0.0.8")
        self.clock.t += 10
        d = self.conn("10.0.0.9")
        a.last_ms = 0  # the logged-in one is the idlest of all, and still kept
        self.assertTrue(self.srv._make_room())
        self.assertEqual(b.gone, "shed")
        self.assertIsNone(a.gone)
        self.assertIsNone(d.gone)
        self.assertTrue(self.srv._make_room())
        self.assertEqual(d.gone, "shed")
        self.assertFalse(self.srv._make_room())  # only logged-in clients left: refuse newcomer
        self.assertEqual(self.srv.stats["shed"], 2)
        self.assertEqual(self.srv.numlogins("apps"), 1)

    def speak(self, c, line=b"GET VAR apps ups.status\n"):
        """One request through the server's own input path (as the connection task feeds it)."""
        w = Writer()
        asyncio.run(self.srv._feed(c, w, line))
        return w.out

    def test_active_clients_are_never_shed_by_silent_newcomers(self):
        # a client that polls (logged in or not) keeps its place against sockets that never spoke
        poller = self.conn("10.0.0.20")  # not logged in: polls like collectd or upsc
        self.assertEqual(self.speak(poller), b'VAR apps ups.status "OL"\n')
        self.clock.t += 3000  # 3 s since its last poll: the silent ones are newer
        s1 = self.conn("10.0.0.21")
        self.clock.t += 10
        s2 = self.conn("10.0.0.22")
        self.assertTrue(self.srv._make_room())
        self.assertEqual(s1.gone, "shed")  # the oldest that never sent a request
        self.assertTrue(self.srv._make_room())
        self.assertEqual(s2.gone, "shed")
        self.assertIsNone(poller.gone)
        # only an active client left: the newcomer is refused, the poller keeps its connection
        self.assertFalse(self.srv._make_room())
        self.assertIsNone(poller.gone)
        self.assertEqual(self.srv.stats["shed"], 2)

    def test_silent_first_then_the_longest_idle_past_the_active_window(self):
        active_ms = self.srv.active_ms
        self.assertEqual(active_ms, self.srv.idle_ms // 2)
        idle_a = self.conn("10.0.0.30")
        self.speak(idle_a)
        self.clock.t += 100
        idle_b = self.conn("10.0.0.31")
        self.speak(idle_b)
        self.clock.t += active_ms  # both now idle past the window, a the longer
        recent = self.conn("10.0.0.32")
        self.speak(recent)
        silent = self.conn("10.0.0.33")  # the newest of all, and silent: shed first
        self.assertTrue(self.srv._make_room())
        self.assertEqual(silent.gone, "shed")
        self.assertTrue(self.srv._make_room())
        self.assertEqual(idle_a.gone, "shed")
        self.assertTrue(self.srv._make_room())
        self.assertEqual(idle_b.gone, "shed")
        self.assertFalse(self.srv._make_room())  # `recent` is active
        self.assertIsNone(recent.gone)
        # an empty line or a bad command is still a request: the client is not silent
        quiet = self.conn("10.0.0.34")
        self.speak(quiet, b"\n")
        self.assertFalse(self.srv._make_room())
        self.assertIsNone(quiet.gone)

    def test_a_login_step_alone_does_not_protect_a_socket(self):
        # one USERNAME per socket must not let an attacker hold places a real client needs
        poller = self.conn("10.0.0.40")
        self.speak(poller)
        half = self.conn("10.0.0.41")
        self.speak(half, b"USERNAME x\n")
        self.speak(half, b"PASSWORD y\n")
        self.assertTrue(self.srv._make_room())
        self.assertEqual(half.gone, "shed")
        self.assertIsNone(poller.gone)

    def test_limiter_injected(self):
        srv = NutServer(server_cfg(), self.prov, self.clock, limiter=LoginLimiter(free=9))
        c = Conn("10.1.1.1", 1, 0, 64)
        for _ in range(5):
            c.user, c.password = "mon", "bad"
            srv.handle(c, ["LOGIN", "apps"])
        self.assertEqual(srv.auth_delay_ms(c, ["LOGIN", "apps"]), 0)
