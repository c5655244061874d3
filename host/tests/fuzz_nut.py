"""Fuzz harness: the NUT request parser (sentinel.nut.protocol.LineParser / split) and the
server's sans-IO request handler (NutServer.handle), under CPython.

    .venv/bin/python host/tests/fuzz_nut.py -max_total_time=600 -rss_limit_mb=1024   # atheris
    .venv/bin/python host/tests/fuzz_nut.py --random 200000                          # no atheris

Properties checked on every input (an AssertionError is a finding; atheris saves the input):
  - push() returns MORE/LINE/DROP/ABUSE only; a LINE's words are printable ASCII, at most 32,
    their bytes at most maxline in total; ABUSE comes only past maxraw raw bytes;
  - split() never raises and agrees with the incremental parser on the first line;
  - handle() never raises, returns text ending in "\n" made of printable lines;
  - authorisation: FSD is raised, a variable set or an instant command run only for a
    connection whose USERNAME/PASSWORD match a user holding that right (and never when the
    password is wrong or missing).
"""
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))
from powersentinel.paths import use_firmware_lib  # noqa: E402

use_firmware_lib()
from sentinel import config  # noqa: E402  # pyright: ignore[reportMissingImports]
from sentinel.nut import protocol as P  # noqa: E402  # pyright: ignore[reportMissingImports]
from sentinel.nut import server as S  # noqa: E402  # pyright: ignore[reportMissingImports]
from sentinel.passwd import hash_password  # noqa: E402  # pyright: ignore[reportMissingImports]

MAXLINE, MAXRAW = 512, 2048
PW = {"mon": "mon-pw-AAAA", "pri": "pri-pw-BBBB", "adm": "adm-pw-CCCC", "setr": "set-pw-DDDD"}
USERS = [
    {"name": "mon", "password": hash_password(PW["mon"], "s1"), "role": "secondary", "actions": []},
    {"name": "pri", "password": hash_password(PW["pri"], "s2"), "role": "primary", "actions": []},
    {"name": "adm", "password": hash_password(PW["adm"], "s3"), "role": "primary",
     "actions": ["FSD", "SET", "INSTCMD"]},
    {"name": "setr", "password": hash_password(PW["setr"], "s4"), "role": "secondary",
     "actions": ["SET"]},
]
RIGHTS = {"mon": set(), "pri": {"FSD"}, "adm": {"FSD", "SET", "INSTCMD"}, "setr": {"SET"}}


class Provider:
    def __init__(self):
        self.sets = []
        self.cmds_run = []
        self.stale = False

    def ups_names(self):
        return [("apps", "Apps tier"), ("db", "Databases")]

    def status(self, ups):
        return "OL"

    def vars(self, ups):
        if self.stale:
            return None
        return [("battery.charge", 100), ("ups.load", 20), ("ups.delay.shutdown", 60),
                ("device.model", 'odd "model" #1 \\x')]

    def rw_vars(self, ups):
        return [("ups.delay.shutdown", "NUMBER"), ("ups.load", "STRING:4")]

    def cmds(self, ups):
        return ["load.off", "test.battery.start.quick"]

    def set_var(self, ups, var, value):
        self.sets.append((ups, var, value))
        return None

    def instcmd(self, ups, cmd, param):
        self.cmds_run.append((ups, cmd, param))
        return None


def _server():
    prov = Provider()
    clock = [0]
    cfg, errs = config.validate({"nut": {"max_conns": 4, "users": USERS}})
    assert not errs, errs
    srv = S.NutServer(cfg["nut"], prov, lambda: clock[0])
    return srv, prov, clock


def _printable(s):
    return all(32 <= ord(ch) <= 126 for ch in s)


def _authorised(conn, right):
    u = conn.user
    return u in PW and conn.password == PW[u] and right in RIGHTS[u]


def check_stream(data, srv=None, prov=None, clock=None):
    """Feed `data` as one connection's byte stream; check every property."""
    if srv is None or prov is None or clock is None:
        srv, prov, clock = _server()
    conn = S.Conn("10.0.0.9", 40000, 0, MAXLINE)
    p = P.LineParser(MAXLINE, MAXRAW)
    raw_in_line = 0
    for b in data:
        r = p.push(b)
        raw_in_line += 1
        assert r in (P.MORE, P.LINE, P.DROP, P.ABUSE), r
        if r == P.ABUSE:
            assert raw_in_line > MAXRAW
            return
        if r in (P.LINE, P.DROP):
            raw_in_line = 0
        if r != P.LINE:
            continue
        if p.too_long:
            continue
        args = p.args()
        assert len(args) <= P.MAX_ARGS
        assert sum(len(a) for a in args) <= MAXLINE
        assert all(_printable(a) for a in args), args
        fsd0 = dict(srv._fsd)
        nset, ncmd = len(prov.sets), len(prov.cmds_run)
        prov.stale = clock[0] % 7 == 3
        reply = srv.handle(conn, args)
        clock[0] += 1
        assert isinstance(reply, str) and reply.endswith("\n"), repr(reply)
        for line in reply.split("\n")[:-1]:
            assert _printable(line), repr(line)
        if srv._fsd != fsd0:
            assert _authorised(conn, "FSD"), (conn.user, conn.password, args)
        if len(prov.sets) != nset:
            assert _authorised(conn, "SET"), (conn.user, conn.password, args)
        if len(prov.cmds_run) != ncmd:
            assert _authorised(conn, "INSTCMD"), (conn.user, conn.password, args)
        if conn.quit:
            return


def one_input(data):
    if len(data) > 8192:
        data = data[:8192]
    # the one-shot splitter must agree with the incremental parser on the first line
    first = data.split(b"\n", 1)[0] + b"\n"
    w = P.split(first, MAXLINE)
    p = P.LineParser(MAXLINE, 1 << 30)
    inc = None
    for c in first:
        r = p.push(c)
        if r == P.LINE:
            inc = P.TOO_LONG if p.too_long else p.args()
            break
        if r == P.DROP:
            break
    assert w == inc, (first, w, inc)
    check_stream(data)


# -- seeds and a dependency-free random driver (CI, and where atheris is not installed) ----------
SEEDS = [
    b"VER\nHELP\nNETVER\nPROTVER\nLIST UPS\n",
    b"USERNAME adm\nPASSWORD adm-pw-CCCC\nLOGIN apps\nFSD apps\nSET VAR apps ups.load 10\n"
    b"INSTCMD apps load.off\nLOGOUT\n",
    b"USERNAME mon\nPASSWORD mon-pw-AAAA\nLOGIN apps\nFSD apps\nSET VAR apps ups.load 10\n",
    b"USERNAME pri\nPASSWORD wrong\nLOGIN apps\nPRIMARY apps\nFSD apps\n",
    b"USERNAME setr\nPASSWORD set-pw-DDDD\nSET VAR db ups.delay.shutdown 30\nSET TRACKING ON\n"
    b"SET VAR apps ups.load 12345\nGET TRACKING\n",
    b'GET VAR apps "device.model"\nGET DESC apps ups.status\nLIST VAR apps\nLIST RW apps\n',
    b"GET VAR apps ups.status # comment\n\"quoted word\\\" \" = x\\\ny\n",
    b"LIST CMD apps\nGET CMDDESC apps load.off\nLIST ENUM apps ups.load\nLIST CLIENT apps\n",
    b"\x00\xff\x7fGET\tVAR\rapps ups.status\n" + b"A" * 700 + b"\n",
]
_TOKENS = [b"USERNAME ", b"PASSWORD ", b"LOGIN ", b"FSD ", b"SET VAR ", b"INSTCMD ", b"GET VAR ",
           b"LIST ", b"apps", b"db", b"adm", b"pri", b"mon", b"setr", b"adm-pw-CCCC",
           b"pri-pw-BBBB", b"set-pw-DDDD", b"\n", b"\"", b"\\", b"#", b"=", b" ", b"\x00",
           b"ups.load", b"load.off", b"PRIMARY ", b"MASTER ", b"LOGOUT", b"TRACKING "]


def mutate(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(6)
        pos = rng.randint(0, len(b))
        if op == 0 and b:
            del b[pos:pos + rng.randint(1, 16)]
        elif op == 1:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 2:
            b[pos:pos] = rng.choice(_TOKENS)
        elif op == 3 and b:
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256)
        elif op == 4:
            b[pos:pos] = bytes([rng.choice(b" \n\"\\#=")]) * rng.randint(1, 600)
        else:
            other = rng.choice(SEEDS)
            b[pos:pos] = other[:rng.randint(0, len(other))]
    return bytes(b)


def random_run(n, seed=0):
    rng = random.Random(seed)
    corpus = list(SEEDS)
    for i in range(n):
        data = mutate(rng, rng.choice(corpus))
        one_input(data)
        if i % 50 == 0 and len(data) < 4096:
            corpus.append(data)
            del corpus[:-200]
    return n


def main():
    if "--random" in sys.argv:
        n = int(sys.argv[sys.argv.index("--random") + 1])
        random_run(n, int(os.environ.get("PS_REL_SEED", "0")))
        print("ok: %d inputs" % n)
        return
    # optional (not in the dev extras): only the coverage-guided mode needs it
    import atheris  # pyright: ignore[reportMissingModuleSource]
    if os.environ.get("PS_FUZZ_INSTRUMENT", "1") == "1":
        getattr(atheris, "instrument_all")()  # coverage feedback from the firmware modules (~15 s)
    atheris.Setup(sys.argv, lambda d: one_input(bytes(d)))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
