# MicroPython script: runs the firmware's NUT server on loopback with a fake provider, for host
# tests (test_nut_conformance.py) and benchmarks. Not a pytest module.
#
#   micropython nut_harness.py SPEC.json [FIRMWARE_LIB]
#
# SPEC: {"host": "127.0.0.1", "port": N, "ctl_port": M,
#        "nut": {keys of the cfg "nut" section; the schema's defaults fill the rest},
#        "limiter": {LoginLimiter keyword arguments} (optional),
#        "upses": [{"name": "apps", "desc": "...", "status": "OL" | null,
#                   "vars": [[var, value], ...], "rw": [[var, "NUMBER" | "STRING:n"], ...],
#                   "cmds": [cmd, ...]}]}
# Prints "READY <port> <ctl_port>" once listening. The control port takes one JSON object per
# line and answers one JSON line:
#   {"op": "fsd", "ups": u, "on": bool}          server.set_fsd
#   {"op": "status", "ups": u, "value": s|null}  provider's ups.status (null: no reading, WAIT)
#   {"op": "stale", "ups": u, "on": bool}        provider data stale or fresh
#   {"op": "set", "ups": u, "var": v, "value": x} change a variable
#   {"op": "logged_in", "ups": u}                -> {"clients": [[addr, user], ...]}
#   {"op": "events"}                             -> {"events": [[kind, ups, addr, user, how, ms]]}
#   {"op": "stats"}      -> {"stats": {...}, "conns": n, "mem_alloc": n, "mem_free": n,
#                            "mem_base": heap in use once listening, "done": provider actions,
#                            "reads": {ups: vars() calls, one per GET VAR, stale or not}}
#   {"op": "quit"}
import sys
import json
import gc
import time
import asyncio

_lib = sys.argv[2] if len(sys.argv) > 2 else __file__.rsplit("/", 1)[0] + "/../../firmware/lib"
sys.path.insert(0, _lib)

from sentinel import config, schema  # noqa: E402
gc.collect()  # the compiler's garbage from those two: server.py compiles in what is left
from sentinel.nut.server import NutServer  # noqa: E402
from sentinel.nut.auth import LoginLimiter  # noqa: E402


def _filled(fields, given, defaults, where):
    """`given` over `defaults`; a key the schema does not have, or a required one missing,
    stops the harness."""
    keys = [f["k"] for f in fields]
    out = dict(defaults)
    for k in given:
        if k not in keys:
            raise SystemExit("spec %s.%s: not a schema key (allowed: %s)"
                             % (where, k, ", ".join(keys)))
        out[k] = given[k]
    for f in fields:
        if f.get("d") == schema.REQUIRED and f["k"] not in out:
            raise SystemExit("spec %s: %s is required" % (where, f["k"]))
    return out


def nut_section(given):
    """The "nut" section with every default config.validate() fills in, the spec's values over
    them. Values are not range-checked, so a test may idle clients out sooner than a site may."""
    nut = _filled(schema.NUT, given, config.defaults()["nut"], "nut")
    user_defaults = {f["k"]: f["d"] for f in schema.NUT_USER if f["d"] != schema.REQUIRED}
    nut["users"] = [_filled(schema.NUT_USER, u, user_defaults, "nut.users") for u in nut["users"]]
    return nut


class FakeProvider:
    def __init__(self, upses):
        self.order = []
        self.u = {}
        for s in upses:
            name = s["name"]
            self.order.append((name, s.get("desc", "")))
            self.u[name] = {
                "status": s.get("status"),
                "vars": [list(kv) for kv in s.get("vars", [])],
                "rw": [tuple(kv) for kv in s.get("rw", [])],
                "cmds": list(s.get("cmds", [])),
                "stale": False,
            }
        self.done = []  # (ups, what) actions performed, for tests
        self.reads = {}  # ups -> vars() calls: how many polls a UPS has had, stale or not

    def ups_names(self):
        return self.order

    def status(self, ups):
        return self.u[ups]["status"]

    def vars(self, ups):
        self.reads[ups] = self.reads.get(ups, 0) + 1
        d = self.u[ups]
        if d["stale"]:
            return None
        return d["vars"]

    def rw_vars(self, ups):
        return self.u[ups]["rw"]

    def cmds(self, ups):
        return self.u[ups]["cmds"]

    def set_value(self, ups, var, value):
        if var == "ups.status":
            self.u[ups]["status"] = value
            return
        for kv in self.u[ups]["vars"]:
            if kv[0] == var:
                kv[1] = value
                return
        self.u[ups]["vars"].append([var, value])

    def set_var(self, ups, var, value):
        self.done.append((ups, "SET " + var))
        self.set_value(ups, var, value)
        return None

    def instcmd(self, ups, cmd, param):
        self.done.append((ups, "INSTCMD " + cmd))
        return None


def main():
    spec = json.load(open(sys.argv[1]))
    prov = FakeProvider(spec["upses"])
    lim = spec.get("limiter")
    srv = NutServer(nut_section(spec.get("nut", {})), prov, time.ticks_ms,
                    limiter=LoginLimiter(**lim) if lim else None)
    events = []

    def ev(kind):
        def f(ups, client):
            events.append([kind, ups, client[0], client[1], client[2], time.ticks_ms()])
            if len(events) > 200:
                events.pop(0)
        return f

    srv.on_login = ev("login")
    srv.on_logout = ev("logout")
    srv.on_fsd = ev("fsd")
    stop = asyncio.Event()
    mem = {}

    def control(req):
        op = req.get("op")
        u = req.get("ups")
        if op == "fsd":
            srv.set_fsd(u, bool(req.get("on")))
        elif op == "status":
            prov.u[u]["status"] = req.get("value")
        elif op == "stale":
            prov.u[u]["stale"] = bool(req.get("on"))
        elif op == "set":
            prov.set_value(u, req["var"], req["value"])
        elif op == "logged_in":
            return {"ok": True, "clients": [list(c) for c in srv.logged_in(u)]}
        elif op == "events":
            return {"ok": True, "events": events}
        elif op == "stats":
            gc.collect()
            return {"ok": True, "stats": srv.stats, "conns": len(srv.conns),
                    "mem_alloc": gc.mem_alloc(), "mem_free": gc.mem_free(),
                    "mem_base": mem.get("base", 0), "done": prov.done, "reads": prov.reads}
        elif op == "quit":
            stop.set()
        else:
            return {"ok": False, "error": "unknown op"}
        return {"ok": True}

    async def ctl_client(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    rep = control(json.loads(line))
                except Exception as e:
                    rep = {"ok": False, "error": repr(e)}
                writer.write((json.dumps(rep) + "\n").encode())
                await writer.drain()
        finally:
            writer.close()

    async def run():
        host = spec.get("host", "127.0.0.1")
        await srv.start(host, spec["port"])
        ctl = await asyncio.start_server(ctl_client, host, spec["ctl_port"])
        gc.collect()
        mem["base"] = gc.mem_alloc()  # listening, no client yet
        print("READY %d %d" % (spec["port"], spec["ctl_port"]))
        await stop.wait()
        srv.close()
        ctl.close()
        await asyncio.sleep_ms(20)

    asyncio.run(run())


main()
