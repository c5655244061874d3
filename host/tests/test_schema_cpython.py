"""The config schema and validator give the same answers under CPython (host: TOML in, JSON
out) and under MicroPython (the device), and every key is documented."""
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LIB = os.path.join(ROOT, "firmware", "lib")
if LIB not in sys.path:
    sys.path.insert(0, LIB)

from sentinel import config, passwd, schema  # noqa: E402
from sentinel import statemachine as smm  # noqa: E402

PW = passwd.hash_password("correct horse battery", "s4lt")


def _good():
    return {
        "version": 1,
        "site": {"name": "hopital-nord"},
        "mains": {"nominal_v": 230, "nominal_hz": 50.0, "volts_per_count": 0.0213},
        "ups": {"link": "contacts", "contacts": "OL=^0;OB=0;LB=3&^4;", "shutdown_output": 2},
        "policy": {"grace_s": 90, "charge_floor_pct": 35},
        "nut": {"users": [{"name": "upsmon", "password": PW},
                          {"name": "ops.admin", "password": passwd.hash_password("x9!long", "a"),
                           "role": "primary", "actions": ["FSD", "SET"]}]},
        "tiers": [
            {"name": "apps", "hosts": [{"name": "web1", "address": "10.0.0.5",
                                        "mac": "AA-BB-CC-DD-EE-0F", "health": "tcp:80"}]},
            {"name": "db", "max_wait_s": 300, "hosts": [{"name": "pg1", "address": "pg1.lan"}]},
            {"name": "storage", "delay_s": 30, "hosts": []},
        ],
        "recovery": {"wol_broadcast": "10.0.0.255"},
    }


def _bad(**changes):
    obj = _good()
    for dotted, v in changes.items():
        cur = obj
        parts = dotted.split("__")
        for p in parts[:-1]:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        last = parts[-1]
        if isinstance(cur, list):
            cur[int(last)] = v
        else:
            cur[last] = v
    return obj


CORPUS = [
    {},
    _good(),
    [],
    "config",
    None,
    {"version": 2, "extra": {"a": 1}},
    {"mains": {"dip_pct": 95.5, "hysteresis_pct": 4.5, "interruption_pct": 50, "swell_pct": 104.25}},
    {"mains": {"sample_rate": 20000, "capture_pre_ms": 1000, "capture_post_ms": 2000}},
    {"mains": {"volts_per_count": 1e-9, "nominal_v": 1e6, "freq_tolerance_hz": -0.5}},
    {"mains": {"nominal_v": "230V", "hysteresis_pct": 0.1 + 0.2}},
    {"policy": {"grace_s": 1.5, "charge_floor_pct": True, "shutdown_on_link_lost": "yes", "bogus": None}},
    {"ups": {"link": "Q1", "baud": 2400.0, "contacts": "OB=1;OB=2;", "shutdown_output": None}},
    {"ups": {"link": "contacts", "contacts": "LB=2&^33;"}},
    {"ups": {"link": "contacts", "contacts": "XX=1;"}},
    {"ups": {"link": "contacts", "contacts": "LB=2;"}},
    {"mains": {"interruption_pct": 45, "dip_pct": 50, "hysteresis_pct": 5.0}},
    {"site": {"name": "caf\u00e9 \u2603"}},
    {"site": {"name": "x" * 50}},
    _bad(tiers__1__name="apps", tiers__2__name="st orage"),
    _bad(tiers__0__hosts__0__mac="01:00:5e:00:00:01", tiers__0__hosts__0__address="999.1.1.1"),
    _bad(tiers__0__hosts__0__health="http:80", tiers__1__hosts__0__mac="aa:bb:cc:dd:ee:0f"),
    _bad(tiers__2__hosts=[{"name": "n1", "address": "n1", "mac": "aa:bb:cc:dd:ee:zz"}]),
    _bad(tiers__1__hosts=[{"name": "web1", "address": "10.0.0.5"}, {"address": "x"}, "host"]),
    _bad(nut__users=[{"name": "upsmon", "password": "plaintext"},
                     {"name": "b", "password": passwd.hash_password("", "e")},
                     {"name": "b", "password": passwd.hash_password("b", "e"), "actions": ["FSD", "FSD", 3]}]),
    _bad(nut__users={"upsmon": PW}),
    _bad(tiers=[{"name": "t%d" % i} for i in range(10)]),
    _bad(recovery__wol_broadcast="255.255.255.0255", recovery__wake_retries=-1),
]


def _micropython():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.path.exists(exe):
        return exe
    return shutil.which("micropython")


MP_SCRIPT = r"""
import sys, json
sys.path.insert(0, sys.argv[1])
from sentinel import config, passwd
from sentinel import statemachine as smm
with open(sys.argv[2]) as f:
    corpus = json.load(f)
out = {"validate": [list(config.validate(o)) for o in corpus],
       "hash": passwd.hash_password("pa55 word", "abc"),
       "check": [passwd.check_password(passwd.hash_password("pa55 word", "abc"), w) for w in ("pa55 word", "x", "")]}
exec(open(sys.argv[3]).read())
out["scenario"] = scenario(smm, config)
with open(sys.argv[4], "w") as f:
    json.dump(out, f)
"""

# A scenario both interpreters run through the state machine; the records must match.
SCENARIO = r"""
def scenario(smm, config):
    cfg = config.defaults()
    sm = smm.StateMachine(cfg, 0)
    i = smm.Inputs(ups_charge=100, ups_runtime=1200)
    recs = []
    t = 0
    plan = [(3000, {}), (500, {"mains_lost": True}), (2500, {"mains_lost": False}),
            (2900, {"ups_low_battery": True}), (1000, {"ups_low_battery": False}),
            (61000, {"mains_lost": True, "ups_on_battery": True, "mains_good": False}),
            (5000, {"ups_link_ok": False})]
    for dur, change in plan:
        for k in change:
            setattr(i, k, change[k])
        end = t + dur
        while t < end:
            t += 100
            recs.extend(list(r) for r in sm.update(t, i))
    recs.extend(list(r) for r in sm.tier_progress(t, "apps", "fsd"))
    recs.extend(list(r) for r in sm.sequence_done(t))
    d = sm.to_dict(t)
    sm2 = smm.StateMachine.from_dict(cfg, d, t + 5000)
    recs.extend(list(r) for r in sm2.history())
    return {"records": recs, "state": sm2.state, "dict": d}
"""


def _cpython_results():
    ns = {}
    exec(SCENARIO, ns)
    corpus = json.loads(json.dumps(CORPUS))
    out = {"validate": [list(config.validate(o)) for o in corpus],
           "hash": passwd.hash_password("pa55 word", "abc"),
           "check": [passwd.check_password(passwd.hash_password("pa55 word", "abc"), w)
                     for w in ("pa55 word", "x", "")],
           "scenario": ns["scenario"](smm, config)}
    return json.loads(json.dumps(out))


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    exe = _micropython()
    if not exe:
        pytest.skip("no micropython executable")
    d = tmp_path_factory.mktemp("schema")
    (d / "corpus.json").write_text(json.dumps(CORPUS))
    (d / "run.py").write_text(MP_SCRIPT)
    (d / "scenario.py").write_text(SCENARIO)
    res = subprocess.run([exe, str(d / "run.py"), LIB, str(d / "corpus.json"), str(d / "scenario.py"),
                          str(d / "out.json")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    mp = json.loads((d / "out.json").read_text())
    return _cpython_results(), mp


def test_validate_identical_on_both_interpreters(both):
    cp, mp = both
    assert len(cp["validate"]) == len(CORPUS)
    for n, (a, b) in enumerate(zip(cp["validate"], mp["validate"])):
        assert a[1] == b[1], "errors differ for corpus[%d]" % n
        assert a[0] == b[0], "cfg differs for corpus[%d]" % n


def test_corpus_exercises_every_kind_of_error(both):
    cp, _ = both
    errors = [e for cfg_errs in cp["validate"] for e in cfg_errs[1]]
    for needle in ("must be an integer", "must be a number", "must be true or false", "must be an object",
                   "must be a list", "is out of range", "is not allowed", "unknown key", "required key missing",
                   "characters outside", "not printable ASCII", "is not a MAC", "multicast", "health check",
                   "is not an IPv4", "unknown signal", "defined twice", "not a line number",
                   "no OB or OL rule", "is not a password hash", "easily guessed", "listed twice",
                   "must be unique", "must be below 100", "must be above 100", "must be below dip_pct",
                   "fit in RAM", "has 10 items"):
        assert any(needle in e for e in errors), needle
    assert cp["validate"][0][1] == [] and cp["validate"][1][1] == []


def test_password_hash_identical(both):
    cp, mp = both
    assert cp["hash"] == mp["hash"] == ("sha256$abc$" + __import__("hashlib").sha256(b"abcpa55 word").hexdigest())
    assert cp["check"] == mp["check"] == [True, False, False]


def test_state_machine_identical(both):
    cp, mp = both
    assert cp["scenario"] == mp["scenario"]
    causes = [r[3] for r in cp["scenario"]["records"]]
    assert causes[:4] == ["mains_lost", "mains_restored", "lb_flash", "mains_lost"]
    assert "grace_expired" in causes and "point_of_no_return" in causes
    assert cp["scenario"]["state"] == "LOAD_OFF"


def test_every_key_is_documented():
    with open(os.path.join(ROOT, "docs", "configuration.md")) as f:
        doc = f.read()
    missing = [p for p, f in schema.walk() if "`%s`" % f["k"] not in doc]
    assert missing == []
