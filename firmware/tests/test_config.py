# Configuration: schema defaults, every kind of validation error, safe loading, atomic saving.
import io
import json
import os

from mpunit import TestCase
from sentinel import config, passwd, schema

PW = passwd.hash_password("correct horse battery", "s4lt")


def good_obj():
    return {
        "site": {"name": "hopital-nord"},
        "ups": {"link": "q1"},
        "policy": {"grace_s": 90},
        "nut": {"users": [{"name": "upsmon", "password": PW},
                          {"name": "admin", "password": passwd.hash_password("x9!long", "a"),
                           "role": "primary", "actions": ["FSD", "INSTCMD"]}]},
        "tiers": [
            {"name": "apps", "hosts": [{"name": "web1", "address": "10.0.0.5",
                                        "mac": "AA-BB-CC-DD-EE-0F", "health": "tcp:80"}]},
            {"name": "db", "max_wait_s": 300, "hosts": [{"name": "pg1", "address": "pg1.lan"}]},
            {"name": "storage", "delay_s": 30, "hosts": []},
        ],
    }


def errors_of(obj):
    return config.validate(obj)[1]


class TestSchema(TestCase):
    def test_defaults_are_valid_and_match_the_shared_keys(self):
        cfg, errs = config.validate({})
        self.assertEqual(errs, [])
        self.assertEqual(cfg["version"], schema.VERSION)
        self.assertEqual(cfg["mains"]["nominal_v"], 230.0)
        self.assertEqual(cfg["mains"]["dip_pct"], 90.0)
        self.assertEqual(cfg["ups"]["contacts"], "OB=1;LB=2;")
        self.assertIsNone(cfg["ups"]["shutdown_output"])
        self.assertEqual(cfg["policy"], {"grace_s": 60, "charge_floor_pct": 40, "runtime_floor_s": 300,
                                         "shutdown_on_link_lost": True, "stable_mains_s": 60,
                                         "restart_charge_pct": 20, "return_stable_ms": 2000,
                                         "lb_filter_ms": 3000})
        self.assertEqual(cfg["nut"]["users"], [])
        self.assertEqual(cfg["tiers"], [])
        self.assertEqual(cfg["recovery"]["wol_broadcast"], "255.255.255.255")

    def test_every_default_is_within_its_own_rules(self):
        n = 0
        for path, f in schema.walk():
            n += 1
            self.assertIn("doc", f, path)
            d = f.get("d")
            if f["t"] in ("int", "float") and d is not None:
                self.assertTrue(f["min"] <= d <= f["max"], path)
            if f["t"] == "enum":
                self.assertIn(d, f["c"], path)
        self.assertGreater(n, 50)
        self.assertEqual(schema.field("tiers.hosts.mac")["fmt"], "mac")
        self.assertIsNone(schema.field("tiers.nope"))

    def test_good_config_normalised(self):
        cfg, errs = config.validate(good_obj())
        self.assertEqual(errs, [])
        self.assertEqual(cfg["tiers"][0]["hosts"][0]["mac"], "aa:bb:cc:dd:ee:0f")
        self.assertIsNone(cfg["tiers"][1]["hosts"][0]["mac"])
        self.assertEqual(cfg["tiers"][1]["hosts"][0]["health"], "nut")
        self.assertEqual(cfg["tiers"][2]["max_wait_s"], 120)
        self.assertEqual(cfg["nut"]["users"][0]["role"], "secondary")
        self.assertEqual(cfg["nut"]["users"][0]["actions"], [])
        self.assertEqual(cfg["policy"]["grace_s"], 90)
        self.assertEqual(cfg["policy"]["charge_floor_pct"], 40)

    def test_numbers_convert_between_int_and_float(self):
        cfg, errs = config.validate({"mains": {"nominal_v": 120, "nominal_hz": 60.0},
                                     "policy": {"grace_s": 30.0}})
        self.assertEqual(errs, [])
        self.assertIsInstance(cfg["mains"]["nominal_v"], float)
        self.assertEqual(cfg["mains"]["nominal_hz"], 60)
        self.assertIsInstance(cfg["policy"]["grace_s"], int)
        self.assertEqual(errors_of({"policy": {"grace_s": 30.5}}),
                         ["policy.grace_s: must be an integer, got 30.5; allowed 0..86400"])


class TestErrors(TestCase):
    def check(self, obj, expected):
        self.assertEqual(errors_of(obj), expected)

    def test_wrong_types(self):
        self.check({"policy": {"grace_s": "60", "shutdown_on_link_lost": 1}},
                   ["policy.grace_s: must be an integer, got \"60\"; allowed 0..86400",
                    "policy.shutdown_on_link_lost: must be true or false, got 1"])
        self.check({"policy": {"grace_s": True}},  # a bool is not a number here, on any interpreter
                   ["policy.grace_s: must be an integer, got true; allowed 0..86400"])
        self.check({"mains": []}, ["mains: must be an object, got a list"])
        self.check({"ups": {"shutdown_output": "2"}},
                   ["ups.shutdown_output: must be an integer, got \"2\"; allowed 0..31 or null"])
        self.check([1], ["(top): must be an object, got a list"])

    def test_out_of_range_and_length(self):
        self.check({"policy": {"charge_floor_pct": 101}, "site": {"name": ""}},
                   ["site.name: \"\" has 0 characters; allowed 1..32",
                    "policy.charge_floor_pct: 101 is out of range; allowed 0..100"])
        self.check({"mains": {"volts_per_count": 0}},
                   ["mains.volts_per_count: 0 is out of range; allowed 1e-06..100"])
        self.check({"ups": {"restore_min": 0}},
                   ["ups.restore_min: 0 is out of range; allowed 1..9999"])

    def test_enums(self):
        self.check({"ups": {"link": "serial", "baud": 19200}},
                   ["ups.link: \"serial\" is not allowed; allowed: \"q1\", \"contacts\", \"none\"",
                    "ups.baud: 19200 is not allowed; allowed: 1200, 2400, 4800, 9600"])
        obj = good_obj()
        obj["nut"]["users"][1]["actions"] = ["FSD", "REBOOT", "FSD"]
        self.check(obj, ["nut.users[1].actions[1]: \"REBOOT\" is not allowed; allowed: \"FSD\", \"SET\", \"INSTCMD\"",
                         "nut.users[1].actions[2]: \"FSD\" is listed twice"])

    def test_unknown_and_missing_keys(self):
        self.check({"polcy": {}, "policy": {"grace": 5}},
                   ["policy.grace: unknown key; allowed keys: grace_s, charge_floor_pct, runtime_floor_s, "
                    "shutdown_on_link_lost, stable_mains_s, restart_charge_pct, return_stable_ms, lb_filter_ms",
                    "polcy: unknown key; allowed keys: version, site, mains, ups, policy, nut, tiers, recovery, "
                    "network, http, board, alerts, pair"])
        self.check({"tiers": [{"hosts": [{"name": "a"}]}]},
                   ["tiers[0].name: required key missing (tier name, also the NUT UPS name its servers monitor)",
                    "tiers[0].hosts[0].address: required key missing (IPv4 address or DNS name the server's "
                    "upsmon connects from and health checks use)"])
        self.check({"version": 2}, ["version: 2 is out of range; allowed 1..1"])

    def test_lists(self):
        self.check({"tiers": [{"name": "t%d" % i} for i in range(9)]},
                   ["tiers: has 9 items; allowed 0..8"])
        self.check({"tiers": ["apps"]}, ["tiers[0]: must be an object, got \"apps\""])
        self.check({"nut": {"users": {}}}, ["nut.users: must be a list, got an object"])

    def test_string_formats(self):
        obj = good_obj()
        obj["tiers"][0]["name"] = "app s"
        h = obj["tiers"][0]["hosts"][0]
        h["address"] = "10.0.0.256"
        h["mac"] = "aa:bb:cc:dd:ee"
        h["health"] = "tcp:0"
        obj["tiers"][1]["hosts"][0]["mac"] = "01:00:5e:00:00:01"
        obj["tiers"][1]["hosts"][0]["address"] = "-bad.lan"
        obj["recovery"] = {"wol_broadcast": "10.0.0.0255"}
        obj["site"]["name"] = "caf\u00e9"
        obj["nut"]["users"][0]["name"] = "up smon"
        self.check(obj, [
            "site.name: \"caf?\" has characters that are not printable ASCII",
            "nut.users[0].name: \"up smon\" has characters outside [A-Za-z0-9_.-]",
            "tiers[0].name: \"app s\" has characters outside [A-Za-z0-9_-]",
            "tiers[0].hosts[0].address: \"10.0.0.256\" is not an IPv4 address or a DNS name",
            "tiers[0].hosts[0].mac: \"aa:bb:cc:dd:ee\" has 14 characters; allowed 17..17",
            "tiers[0].hosts[0].health: \"tcp:0\" is not a health check; allowed: nut, none, tcp:<port 1..65535>",
            "tiers[1].hosts[0].address: \"-bad.lan\" is not an IPv4 address or a DNS name",
            "tiers[1].hosts[0].mac: \"01:00:5e:00:00:01\" is a multicast or null address, not a network card's",
            "recovery.wol_broadcast: \"10.0.0.0255\" is not an IPv4 address like 192.168.1.255",
        ])
        self.check({"tiers": [{"name": "a", "hosts": [{"name": "h", "address": "h", "mac": "aa:bb:cc:dd:ee:gg"}]}]},
                   ["tiers[0].hosts[0].mac: \"aa:bb:cc:dd:ee:gg\" is not a MAC address like aa:bb:cc:dd:ee:ff"])

    def test_contact_rules(self):
        self.assertEqual(errors_of({"ups": {"contacts": "OL=^0;OB=0;LB=3&^4;RB=1|2"}}), [])
        self.check({"ups": {"contacts": "OB=1;XX=2;"}},
                   ["ups.contacts: unknown signal \"XX\" (signals: OL, OB, LB, RB, BYPASS, CAL, OFF, OVER)"])
        self.check({"ups": {"contacts": "OB=1;OB=2;"}}, ["ups.contacts: signal OB is defined twice"])
        self.check({"ups": {"contacts": "OB=32;"}},
                   ["ups.contacts: OB: \"32\" is not a line number 0..31 (optionally ^inverted)"])
        self.check({"ups": {"contacts": "OB1;"}}, ["ups.contacts: rule \"OB1\" is not SIGNAL=EXPR"])
        self.check({"ups": {"link": "contacts", "contacts": "LB=2;"}},
                   ["ups.contacts: link is \"contacts\" but no OB or OL rule is given; allowed: e.g. \"OB=1;LB=2;\""])

    def test_passwords(self):
        def with_pw(p, name="upsmon"):
            return {"nut": {"users": [{"name": name, "password": p}]}}
        self.check(with_pw("hunter2"), [
            "nut.users[0].password: is not a password hash sha256$<salt>$<64 hex>; plaintext passwords "
            "are never stored on the device (the host tool hashes them)"])
        self.check(with_pw(""), ["nut.users[0].password: \"\" has 0 characters; allowed 1..128"])
        self.check(with_pw(passwd.hash_password("", "zz")), [
            "nut.users[0].password: is the hash of an empty, default or easily guessed password (empty); choose another"])
        self.check(with_pw(passwd.hash_password("secret", "zz")), [
            "nut.users[0].password: is the hash of an empty, default or easily guessed password (\"secret\"); choose another"])
        self.check(with_pw(passwd.hash_password("alice", "zz"), "alice"), [
            "nut.users[0].password: is the hash of an empty, default or easily guessed password (\"alice\"); choose another"])
        self.check(with_pw(PW.upper()), [
            "nut.users[0].password: is not a password hash sha256$<salt>$<64 hex>; plaintext passwords "
            "are never stored on the device (the host tool hashes them)"])

    def test_cross_field(self):
        self.check({"mains": {"dip_pct": 95, "hysteresis_pct": 5}},
                   ["mains.hysteresis_pct: dip_pct + hysteresis_pct = 100 must be below 100, or a dip could not "
                    "end at nominal voltage"])
        self.check({"mains": {"swell_pct": 105, "hysteresis_pct": 6, "dip_pct": 80}},
                   ["mains.hysteresis_pct: swell_pct - hysteresis_pct = 99 must be above 100, or a swell could not "
                    "end at nominal voltage"])
        self.check({"mains": {"interruption_pct": 50, "dip_pct": 51}},
                   ["mains.interruption_pct: interruption_pct + hysteresis_pct = 52 must be below dip_pct (51)"])
        self.check({"mains": {"sample_rate": 10000, "capture_post_ms": 800}},
                   ["mains.capture_post_ms: capture_pre_ms + capture_post_ms at sample_rate 10000 needs 9000 "
                    "samples; at most 8192 fit in RAM"])

    def test_uniqueness(self):
        obj = good_obj()
        obj["tiers"][1]["name"] = "apps"
        obj["tiers"][2]["hosts"] = [{"name": "web1", "address": "pg1.lan", "mac": "aa:bb:cc:dd:ee:0f"}]
        obj["nut"]["users"][1]["name"] = "upsmon"
        self.check(obj, [
            "nut.users[1].name: \"upsmon\" is already used by nut.users[0]; user names must be unique",
            "tiers[1].name: \"apps\" is already used by tiers[0]; tier names must be unique",
            "tiers[2].hosts[0].name: \"web1\" is already used by tiers[0].hosts[0]; host names must be unique",
            "tiers[2].hosts[0].address: \"pg1.lan\" is already used by tiers[1].hosts[0]; host addresses must be unique",
            "tiers[2].hosts[0].mac: \"aa:bb:cc:dd:ee:0f\" is already used by tiers[0].hosts[0]; MAC addresses must be unique",
        ])

    def test_mains_channels(self):
        # none: one channel as before; up to three, each with its own pin and calibration
        cfg, errs = config.validate({})
        self.assertEqual((cfg["mains"]["channels"], errs), ([], []))
        cfg, errs = config.validate({"mains": {"channels": [
            {"name": "L1"}, {"name": "L2", "pin": 27, "volts_per_count": 0.03},
            {"name": "L3", "feed": "A"}]}})
        self.assertEqual(errs, [])
        self.assertEqual(cfg["mains"]["channels"][1],
                         {"name": "L2", "pin": 27, "volts_per_count": 0.03, "feed": None})
        self.check({"mains": {"channels": [{"name": n} for n in ("L1", "L2", "L3", "N")]}},
                   ["mains.channels: has 4 items; allowed 0..3"])
        self.check({"mains": {"channels": [{"name": "A"}, {"name": "A"}]}},
                   ["mains.channels[1].name: A is already used by mains.channels[0]; channel "
                    "names must be unique"])
        self.check({"mains": {"channels": [{"name": "A", "pin": 27}, {"name": "B", "pin": 27}]}},
                   ["mains.channels[1].pin: GPIO 27 is already sampled by mains.channels[0]"])
        self.check({"mains": {"channels": [{"name": "L1 "}, {"pin": 26}]}},
                   ["mains.channels[0].name: \"L1 \" has characters outside [A-Za-z0-9_-]",
                    "mains.channels[1].name: required key missing (channel name: L1, L2, L3 for "
                    "phases (served as NUT input.L1-N.voltage ...), or a feed name such as A, B)"])
        # a pin no supported board can sample; on a known port, a pin that port lacks
        self.check({"mains": {"channels": [{"name": "A", "pin": 5}]}},
                   ["mains.channels[0].pin: GPIO 5 is not an ADC input on any supported board; "
                    "allowed: esp32 32, 33, 34, 35, 36, 37, 38, 39; rp2 26, 27, 28"])
        cfg, _ = config.validate({"mains": {"channels": [{"name": "A", "pin": 26},
                                                          {"name": "B", "pin": 34}]}})
        self.assertEqual(schema.mains_errors(cfg, "rp2"),
                         ["mains.channels[1].pin: GPIO 34 is not an ADC input on rp2; allowed: "
                          "26, 27, 28"])
        self.assertEqual(schema.mains_errors(cfg, "esp32"),
                         ["mains.channels[0].pin: GPIO 26 is not an ADC input on esp32; allowed: "
                          "32, 33, 34, 35, 36, 37, 38, 39"])

    def test_board_lines_per_port(self):
        # a real board wires contact lines 0-3 and output line 0; the virtual board more, so
        # the host and the unix port leave it to the firmware (that UPS unread)
        cfg, errs = config.validate({
            "ups": {"link": "contacts", "contacts": "OB=1;LB=5;", "shutdown_output": 0,
                    "feed": "A", "feeds": [{"feed": "B", "link": "contacts",
                                            "contacts": "OB=3;LB=6;", "shutdown_output": 2}]},
            "mains": {"channels": [{"name": "A"}, {"name": "B"}]}})
        self.assertEqual(errs, [])
        want = ["ups.contacts: contact line 5 is not wired on rp2 boards; allowed: lines 0-3",
                "ups.feeds[0].contacts: contact line 6 is not wired on rp2 boards; allowed: "
                "lines 0-3",
                "ups.feeds[0].shutdown_output: output line 2 is not wired on rp2 boards; "
                "allowed: line 0"]
        self.assertEqual(schema.board_lines_errors(cfg, "rp2"), want)
        self.assertEqual(len(schema.board_lines_errors(cfg, "esp32")), 3)
        self.assertEqual(schema.board_lines_errors(cfg, "linux"), [])
        cfg["ups"]["contacts"] = "OB=1;LB=2;"
        cfg["ups"]["feeds"][0].update(contacts="OB=3;", link="q1")   # q1: its output unused
        self.assertEqual(schema.board_lines_errors(cfg, "rp2"), [])

    def test_host_feeds(self):
        def site(feeds, chans=({"name": "A"}, {"name": "L1", "feed": "B"})):
            return {"mains": {"channels": list(chans)}, "tiers": [{"name": "apps", "hosts": [
                {"name": "a1", "address": "10.0.0.1", "feeds": feeds}]}]}
        cfg, errs = config.validate(site(["A", "B"]))
        self.assertEqual((cfg["tiers"][0]["hosts"][0]["feeds"], errs), (["A", "B"], []))
        cfg, errs = config.validate({"tiers": [{"name": "t", "hosts": [
            {"name": "h", "address": "10.0.0.1"}]}]})
        self.assertEqual((cfg["tiers"][0]["hosts"][0]["feeds"], errs), ([], []))
        self.check(site(["C", "A", "A"]),
                   ['tiers[0].hosts[0].feeds[2]: "A" is listed twice',
                    "tiers[0].hosts[0].feeds[0]: feed C is not sensed by any mains channel; "
                    "allowed: A, B (the feeds of mains.channels)"])
        self.check(site(["A"], ({"name": "L1"}, {"name": "L2"})),
                   ["tiers[0].hosts[0].feeds[0]: feed A is not sensed by any mains channel; "
                    "allowed: L1, L2 (the feeds of mains.channels, and its phases that sense "
                    "no feed)"])
        self.check(site(["A"], ()),
                   ["tiers[0].hosts[0].feeds[0]: feed A is not sensed: no mains channel senses "
                    "a feed; list the feeds in mains.channels (name or feed) first"])
        self.check(site("A"), ['tiers[0].hosts[0].feeds: must be a list, got "A"'])
        self.check(site(["A b", 3, "A", "B", "C"]),
                   ["tiers[0].hosts[0].feeds: has 5 items; allowed 0..3",
                    'tiers[0].hosts[0].feeds[0]: "A b" is not a name of 1..8 characters '
                    "[A-Za-z0-9_-]",
                    "tiers[0].hosts[0].feeds[1]: 3 is not a name of 1..8 characters "
                    "[A-Za-z0-9_-]",
                    # numbered in the list as validated (the valid names)
                    "tiers[0].hosts[0].feeds[2]: feed C is not sensed by any mains channel; "
                    "allowed: A, B (the feeds of mains.channels)"])

    def test_ups_per_feed(self):
        def site(ups, chans=({"name": "A"}, {"name": "B"}, {"name": "C"})):
            return {"mains": {"channels": list(chans)}, "ups": ups}
        cfg, errs = config.validate(site({"link": "q1", "feed": "A", "feeds": [
            {"feed": "B"}, {"feed": "C", "link": "none", "shutdown_output": 1}]}))
        self.assertEqual(errs, [])
        self.assertEqual(cfg["ups"]["feeds"][0], {"feed": "B", "link": "q1", "baud": 2400,
                                                  "contacts": "", "shutdown_output": None})
        cfg, errs = config.validate({})   # every existing site: one UPS, nothing more
        self.assertEqual((cfg["ups"]["feed"], cfg["ups"]["feeds"], errs), (None, [], []))
        self.check(site({"feeds": [{"feed": "B"}]}),
                   ["ups.feed: ups.feeds lists more UPSes; name the feed this UPS powers, "
                    "allowed: A, B, C"])
        self.check(site({"feed": "A", "feeds": [{"feed": "D"}, {"feed": "A", "link": "none"}]}),
                   ["ups.feeds[0].feed: feed D is not sensed by any mains channel; allowed: "
                    "A, B, C",
                    "ups.feeds[1].feed: feed A already has its UPS (ups.feed); one UPS a feed"])
        self.check(site({"feed": "A", "feeds": [{"feed": "B"}, {"feed": "C"}]}),
                   ["ups.feeds[1].link: a board has one more UART for a second Q1 UPS; "
                    "allowed: contacts, or none (with shutdown_output)"])

    def test_a_server_may_list_a_phase_that_senses_no_feed(self):
        def errs(chans, feeds):
            return config.validate({"mains": {"channels": chans}, "tiers": [
                {"name": "t", "hosts": [{"name": "h", "address": "10.0.0.1",
                                         "feeds": feeds}]}]})[1]
        three = [{"name": "L1"}, {"name": "L2"}, {"name": "L3"}]
        self.assertEqual(errs(three, ["L2"]), [])
        # a phase that senses a feed is that feed's, not a supply of its own
        fed = [{"name": "L1", "feed": "A"}, {"name": "L2", "feed": "A"}, {"name": "B"}]
        e = errs(fed, ["L2"])
        self.assertEqual(len(e), 1)
        self.assertIn("feed L2 is not sensed", e[0])
        self.assertIn("allowed: A, B", e[0])

    def test_ups_per_feed_read_over_contacts(self):
        def site(ups):
            return {"mains": {"channels": [{"name": "A"}, {"name": "B"}, {"name": "C"}]},
                    "ups": dict(ups, feed="A")}
        cfg, errs = config.validate(site({"link": "contacts", "contacts": "OB=1;LB=2;",
                                          "shutdown_output": 0, "feeds": [
            {"feed": "B", "link": "contacts", "contacts": "OB=3;LB=4|^5;", "shutdown_output": 1},
            {"feed": "C", "link": "q1"}]}))
        self.assertEqual(errs, [])
        self.assertEqual(cfg["ups"]["feeds"][0]["contacts"], "OB=3;LB=4|^5;")
        # a Q1 first UPS: its shutdown_output is not used, so a contact UPS may take line 0
        self.assertEqual(errors_of(site({"link": "q1", "shutdown_output": 0, "feeds": [
            {"feed": "B", "link": "contacts", "contacts": "OB=1;", "shutdown_output": 0}]})), [])
        self.check(site({"link": "q1", "feeds": [{"feed": "B", "link": "contacts"}]}),
                   ["ups.feeds[0].contacts: link is \"contacts\" but no OB or OL rule is "
                    "given; allowed: e.g. \"OB=3;LB=4;\" on lines no other UPS reads"])
        self.check(site({"link": "contacts", "contacts": "OB=1;LB=2;", "feeds": [
            {"feed": "B", "link": "contacts", "contacts": "OB=3&^1;LB=2;"}]}),
                   ["ups.feeds[0].contacts: lines 1, 2 are already read by ups.contacts; each "
                    "UPS needs contact lines of its own"])
        self.check(site({"link": "none", "shutdown_output": 0, "feeds": [
            {"feed": "B", "link": "contacts", "contacts": "OB=3;", "shutdown_output": 2},
            {"feed": "C", "link": "contacts", "contacts": "OL=^3;", "shutdown_output": 0}]}),
                   ["ups.feeds[1].contacts: line 3 is already read by ups.feeds[0].contacts; "
                    "each UPS needs contact lines of its own",
                    "ups.feeds[1].shutdown_output: output line 0 already commands another UPS "
                    "(ups.shutdown_output); each UPS needs an output line of its own"])
        self.check(site({"link": "q1", "feeds": [
            {"feed": "B", "link": "contacts", "contacts": "OB=3;XX=4"}]}),
                   ["ups.feeds[0].contacts: unknown signal \"XX\" (signals: OL, OB, LB, RB, "
                    "BYPASS, CAL, OFF, OVER)",
                    "ups.feeds[0].contacts: link is \"contacts\" but no OB or OL rule is "
                    "given; allowed: e.g. \"OB=3;LB=4;\" on lines no other UPS reads"])

    def test_invalid_value_replaced_by_default(self):
        cfg, errs = config.validate({"policy": {"grace_s": -1}, "tiers": [{"name": "a b"}]})
        self.assertEqual(len(errs), 2)
        self.assertEqual(cfg["policy"]["grace_s"], 60)
        self.assertIsNone(cfg["tiers"][0]["name"])


class TestPasswd(TestCase):
    def test_hash_and_check(self):
        h = passwd.hash_password("pa55 word", "abc")
        self.assertTrue(h.startswith("sha256$abc$"))
        self.assertEqual(len(h), len("sha256$abc$") + 64)
        self.assertEqual(h, passwd.hash_password("pa55 word", "abc"))  # deterministic for a salt
        self.assertTrue(passwd.check_password(h, "pa55 word"))
        self.assertFalse(passwd.check_password(h, "pa55 Word"))
        self.assertFalse(passwd.check_password(h, ""))
        self.assertFalse(passwd.check_password("pa55 word", "pa55 word"))  # plaintext never matches
        self.assertFalse(passwd.check_password(None, "x"))
        # sha256(b"s" + b""), checked against CPython's hashlib
        self.assertEqual(passwd.hash_password("", "s"),
                         "sha256$s$043a718774c572bd8a25adbeb1bfcd5c0256ae11cecf9f9c3f925d0e52beaf89")

    def test_random_salt_and_bad_salt(self):
        a = passwd.hash_password("x")
        b = passwd.hash_password("x")
        self.assertNotEqual(a, b)
        self.assertTrue(passwd.check_password(a, "x") and passwd.check_password(b, "x"))
        with self.assertRaises(ValueError):
            passwd.hash_password("x", "has$dollar")


def _rmtree(d):
    for name in os.listdir(d):
        os.remove(d + "/" + name)
    os.rmdir(d)


class _Cut(Exception):
    pass


class _Dying(io.IOBase):  # IOBase: MicroPython's json.dump needs the stream protocol
    """A file that loses power after `budget` characters."""

    def __init__(self, path, mode, budget):
        self.f = open(path, mode)
        self.budget = budget

    def write(self, s):
        if not isinstance(s, str):
            s = bytes(s).decode()  # MicroPython hands over memoryviews
        if len(s) > self.budget:
            self.f.write(s[:self.budget])
            raise _Cut()
        self.budget -= len(s)
        return self.f.write(s)

    def flush(self):
        self.f.flush()

    def fileno(self):
        return self.f.fileno()

    def close(self):
        self.f.close()


class TestFiles(TestCase):
    def setUp(self):
        import binascii
        self.dir = "/tmp/ps-cfgtest-" + binascii.hexlify(os.urandom(6)).decode()
        os.mkdir(self.dir)
        self.path = self.dir + "/config.json"
        self.good = self.dir + "/config.good.json"

    def tearDown(self):
        _rmtree(self.dir)

    def write(self, path, text):
        with open(path, "w") as f:
            f.write(text)

    def load(self):
        return config.load(self.path, self.good)

    def test_missing_everything_gives_defaults(self):
        cfg, errs, src = self.load()
        self.assertEqual(src, "defaults")
        self.assertEqual(cfg, config.defaults())
        self.assertEqual(errs, [self.path + ": missing or unreadable", self.good + ": missing or unreadable"])

    def test_good_config_loads(self):
        self.write(self.path, json.dumps(good_obj()))
        cfg, errs, src = self.load()
        self.assertEqual((src, errs), ("config", []))
        self.assertEqual(cfg["policy"]["grace_s"], 90)

    def test_bad_json_falls_back_to_good_copy(self):
        self.write(self.path, '{"policy": {"grace_s": 30')
        self.write(self.good, json.dumps(good_obj()))
        cfg, errs, src = self.load()
        self.assertEqual(src, "fallback")
        self.assertEqual(cfg["policy"]["grace_s"], 90)
        self.assertEqual(errs, [self.path + ": not valid JSON"])

    def test_invalid_config_falls_back_then_defaults(self):
        self.write(self.path, json.dumps({"policy": {"grace_s": -5}}))
        self.write(self.good, json.dumps({"ups": {"link": "telepathy"}}))
        cfg, errs, src = self.load()
        self.assertEqual(src, "defaults")
        self.assertEqual(cfg["policy"]["grace_s"], 60)
        self.assertEqual(errs, [
            self.path + ": policy.grace_s: -5 is out of range; allowed 0..86400",
            self.good + ": ups.link: \"telepathy\" is not allowed; allowed: \"q1\", \"contacts\", \"none\""])

    def test_save_refuses_invalid(self):
        errs = config.save({"policy": {"grace_s": "soon"}}, self.path, self.good)
        self.assertEqual(len(errs), 1)
        self.assertEqual(os.listdir(self.dir), [])

    def test_save_then_keeps_previous_good_copy(self):
        first = good_obj()
        self.assertEqual(config.save(first, self.path, self.good), [])
        second = good_obj()
        second["policy"]["grace_s"] = 120
        self.assertEqual(config.save(second, self.path, self.good), [])
        self.assertEqual(sorted(os.listdir(self.dir)), ["config.good.json", "config.json"])
        cfg, errs, src = self.load()
        self.assertEqual((src, cfg["policy"]["grace_s"]), ("config", 120))
        with open(self.good) as f:
            self.assertEqual(json.loads(f.read())["policy"]["grace_s"], 90)
        self.assertEqual(cfg, config.validate(second)[0])  # the file holds the defaults filled in

    def test_power_cut_during_save_keeps_old_config(self):
        self.assertEqual(config.save(good_obj(), self.path, self.good), [])
        new = good_obj()
        new["policy"]["grace_s"] = 5
        for budget in (0, 10, 200):
            def opener(p, m):
                return _Dying(p, m, budget)
            with self.assertRaises(_Cut):
                config.save(new, self.path, self.good, opener=opener)
            cfg, errs, src = self.load()
            self.assertEqual((src, errs, cfg["policy"]["grace_s"]), ("config", [], 90))
        # the next save goes through despite the leftover temporary file
        self.assertEqual(config.save(new, self.path, self.good), [])
        self.assertEqual(self.load()[0]["policy"]["grace_s"], 5)

    def test_save_over_corrupt_config_keeps_good_copy(self):
        self.write(self.good, json.dumps(good_obj()))
        self.write(self.path, "garbage")
        new = good_obj()
        new["policy"]["grace_s"] = 7
        self.assertEqual(config.save(new, self.path, self.good), [])
        with open(self.good) as f:
            self.assertEqual(json.loads(f.read())["policy"]["grace_s"], 90)  # not replaced by garbage
        self.assertEqual(self.load()[0]["policy"]["grace_s"], 7)

    def test_missing_config_with_good_copy_after_interrupted_rename(self):
        # a cut between the two renames of save(): only the good copy and the temporary file exist
        self.write(self.good, json.dumps(good_obj()))
        self.write(self.path + ".tmp", json.dumps({"policy": {"grace_s": 3}}))
        cfg, errs, src = self.load()
        self.assertEqual((src, cfg["policy"]["grace_s"]), ("fallback", 90))
