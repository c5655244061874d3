"""NUT over TLS: heap per connection and handshake time, on the MicroPython unix port.

Runs the firmware's NUT server (host/tests/nut_harness.py: NutServer with a fake provider, the
same code the board runs) twice: once plain, once with a certificate (ECDSA P-256, made here
with openssl). Against each it opens N connections that each send VER and read the answer
(after STARTTLS and the handshake for the TLS server), then reads gc.mem_alloc() after
gc.collect() (the harness's stats op). Per-connection TLS cost = (TLS - plain) / N; the
one-time cost of the certificate (ssl module, context, parsed key) = difference of the two
servers' heap before any client. Handshake time is measured by the client (Python's ssl):
STARTTLS sent -> handshake done, median and max over the TLS connections, opened one by one;
the server's CPU time per connection comes from /proc (10 ms clock ticks: coarse for small N).

    .venv/bin/python benchmarks/bench_nut_tls.py [--conns 8] [--heap 2M] [--json out.json]
    .venv/bin/python benchmarks/bench_nut_tls.py --board [--conns 8]

--board: the whole firmware on a virtual board (128wK heap, ROMFS), plain then with the
certificate: N clients log in (after STARTTLS on the TLS board) and the board's own heap figure
(console `status`, read after the firmware's gc.collect()) is compared, idle and with clients.

The unix port's mbedtls allocates through MicroPython's tracked allocator (m_tracked_calloc,
extmod/mbedtls), so its buffers and handshake state show in gc.mem_alloc(); the figure is the
cost a board pays where the port does the same (rp2). ESP32 builds use ESP-IDF's mbedtls, which
allocates from the IDF heap outside the MicroPython heap (docs/nut-tls.md).
"""
import argparse
import base64
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
MP = os.path.join(REPO, ".venv", "bin", "micropython")
HARNESS = os.path.join(REPO, "host", "tests", "nut_harness.py")
sys.path.insert(0, os.path.join(REPO, "host"))
from powersentinel.nutreal import free_port  # noqa: E402


def make_cert(d):
    key, pem = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", pem, "-days",
                    "2", "-subj", "/CN=sentinel.test"], check=True, capture_output=True)
    der = lambda *a: subprocess.run(["openssl"] + list(a), check=True,  # noqa: E731
                                    capture_output=True).stdout
    return (base64.b64encode(der("x509", "-in", pem, "-outform", "DER")).decode(),
            base64.b64encode(der("pkey", "-in", key, "-outform", "DER")).decode())


class Harness:
    def __init__(self, d, nut, heap, max_conns):
        self.port, self.ctl = free_port(), free_port()
        spec = {"host": "127.0.0.1", "port": self.port, "ctl_port": self.ctl,
                "nut": dict(nut, max_conns=max_conns, idle_timeout_s=600),
                "upses": [{"name": "apps", "desc": "Apps", "status": "OL",
                           "vars": [["battery.charge", "100"]]}]}
        path = os.path.join(d, "spec%d.json" % self.port)
        with open(path, "w") as f:
            json.dump(spec, f)
        self.p = subprocess.Popen([MP, "-X", "heapsize=" + heap, HARNESS, path],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.p.stdout.readline()
        if not line.startswith("READY"):
            raise SystemExit("harness did not start: %s%s" % (line, self.p.stdout.read()))
        self.c = socket.create_connection(("127.0.0.1", self.ctl), timeout=10)
        self.f = self.c.makefile("rw")

    def stats(self):
        self.f.write('{"op": "stats"}\n')
        self.f.flush()
        return json.loads(self.f.readline())

    def vm(self):
        """The interpreter process's VmRSS and VmData (bytes): where the unix port's mbedtls
        allocates (libc malloc), invisible to gc.mem_alloc()."""
        out = {}
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmData"):
                    out[k] = int(v.split()[0]) * 1024
        return out

    def cpu_s(self):
        """User + system CPU seconds the interpreter has used."""
        with open("/proc/%d/stat" % self.p.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self):
        try:
            self.f.write('{"op": "quit"}\n')
            self.f.flush()
            self.p.wait(5)
        except Exception:
            self.p.kill()
            self.p.wait()



def plain_conn(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"VER\n")
    assert s.recv(200).startswith(b"Network UPS Tools")
    return s


def tls_conn(port, ctx):
    """(TLS socket, seconds from STARTTLS sent to handshake done)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    t0 = time.perf_counter()
    s.sendall(b"STARTTLS\n")
    assert s.recv(100) == b"OK STARTTLS\n"
    t = ctx.wrap_socket(s, server_hostname="sentinel.test")
    hs = time.perf_counter() - t0
    t.sendall(b"VER\n")
    assert t.recv(200).startswith(b"Network UPS Tools")
    return t, hs


def run(n, heap, rounds=0):
    d = tempfile.mkdtemp(prefix="bench-nut-tls-")
    cert, key = make_cert(d)
    ctx = ssl.create_default_context(cafile=os.path.join(d, "c.pem"))
    out = {"conns": n, "heap": heap}
    plain = Harness(d, {}, heap, n)
    try:
        base_plain = plain.stats()["mem_base"]
        socks = [plain_conn(plain.port) for _ in range(n)]
        time.sleep(0.2)  # the server's reads after the VER replies: nothing pending
        st = plain.stats()
        assert st["conns"] == n, st
        out["plain_alloc"] = st["mem_alloc"]
        out["plain_vm"] = plain.vm()
        for s in socks:
            s.close()
    finally:
        plain.close()
    tls = Harness(d, {"tls_cert": cert, "tls_key": key}, heap, n)
    try:
        base_tls = tls.stats()["mem_base"]
        vm0 = tls.vm()
        cpu0 = tls.cpu_s()
        socks, times = [], []
        for _ in range(n):
            s, hs = tls_conn(tls.port, ctx)
            socks.append(s)
            times.append(hs)
        time.sleep(0.2)
        st = tls.stats()
        assert st["conns"] == n and st["stats"]["tls_ok"] == n, st
        out["tls_alloc"] = st["mem_alloc"]
        vm1 = tls.vm()
        out["server_cpu_ms_per_handshake"] = (tls.cpu_s() - cpu0) * 1000 / n
        out["tls_rss_per_conn"] = (vm1["VmRSS"] - vm0["VmRSS"]) / n
        out["tls_data_per_conn"] = (vm1["VmData"] - vm0["VmData"]) / n
        for s in socks:
            s.close()
        time.sleep(0.3)
        out["tls_after_close"] = tls.stats()["mem_alloc"]
        out["rounds_after_close"] = []
        for _ in range(rounds):  # leak check: the heap after each round must settle
            for s in [tls_conn(tls.port, ctx)[0] for _ in range(n)]:
                s.close()
            time.sleep(0.3)
            out["rounds_after_close"].append(tls.stats()["mem_alloc"])
    finally:
        tls.close()
    out["base_plain"] = base_plain
    out["base_tls"] = base_tls
    out["cert_once"] = base_tls - base_plain
    out["per_conn_plain"] = (out["plain_alloc"] - base_plain) / n
    out["per_conn_tls_extra"] = (out["tls_alloc"] - base_tls - (out["plain_alloc"] - base_plain)) / n
    out["handshake_ms_median"] = statistics.median(times) * 1000
    out["handshake_ms_max"] = max(times) * 1000
    return out


def board_run(n):
    sys.path.insert(0, HERE)
    import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]
    d = tempfile.mkdtemp(prefix="bench-nut-tls-board-")
    cert, key = make_cert(d)
    ctx = ssl.create_default_context(cafile=os.path.join(d, "c.pem"))
    user, pw = "monuser", rc.USERS["monuser"][0]
    out = {}

    def heap(b):
        # the reporter collects once a second; the status carries that collection's figure
        vals = []
        for _ in range(4):
            time.sleep(1.1)
            with rc.link(b) as lk:
                vals.append(lk.request("status")["heap"]["alloc"])
        return max(vals)

    def login_plain(b):
        c = b.nut_client()
        assert c.login(user, pw) == ["OK", "OK", "OK"]
        return c.sock

    def login_tls(b):
        s = socket.create_connection(b.nut, timeout=10)
        s.sendall(b"STARTTLS\n")
        assert s.recv(100) == b"OK STARTTLS\n"
        t = ctx.wrap_socket(s, server_hostname="sentinel.test")
        for line in ("USERNAME %s" % user, "PASSWORD %s" % pw, "LOGIN %s" % rc.TIER):
            t.sendall(line.encode() + b"\n")
            assert t.recv(100) == b"OK\n"
        return t

    for mode, over, login in (("plain", {}, login_plain),
                              ("tls", {"nut.tls_cert": cert, "nut.tls_key": key}, login_tls)):
        b = rc.Board(os.path.join(d, mode), rc.make_config(**dict(over, **{"nut.max_conns": n})))
        try:
            b.wait_serving(15)
            idle = heap(b)
            socks = [login(b) for _ in range(n)]
            busy = heap(b)
            with rc.link(b) as lk:
                st = lk.request("status")
            out[mode] = {"idle": idle, "clients": busy, "free_with_clients": st["heap"]["free"],
                         "overruns": st["adc"]["overruns"],
                         "max_stall_ms": st["loop"]["max_stall_ms"]}
            for s in socks:
                s.close()
        finally:
            b.stop()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--heap", default="2M")
    ap.add_argument("--rounds", type=int, default=4,
                    help="further rounds of N TLS connections opened and closed (leak check)")
    ap.add_argument("--board", action="store_true",
                    help="measure the whole firmware on a virtual board instead")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.board:
        r = board_run(a.conns)
        for mode in ("plain", "tls"):
            m = r[mode]
            print("%-5s board, 128wK: heap idle %d B, with %d clients logged in %d B (free %d B); "
                  "adc overruns %d, max loop stall %s ms" % (mode, m["idle"], a.conns, m["clients"],
                                                             m["free_with_clients"], m["overruns"],
                                                             m["max_stall_ms"]))
        print("TLS costs the board's heap %+d B idle, %+d B with %d clients"
              % (r["tls"]["idle"] - r["plain"]["idle"], r["tls"]["clients"] - r["plain"]["clients"],
                 a.conns))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(r, f, indent=1)
        return
    r = run(a.conns, a.heap, a.rounds)
    print("heap %s, %d connections" % (r["heap"], r["conns"]))
    print("certificate + ssl, once: %+d B (server listening: %d B plain, %d B TLS)"
          % (r["cert_once"], r["base_plain"], r["base_tls"]))
    print("per plain connection: %.0f B; TLS adds %.0f B per connection"
          % (r["per_conn_plain"], r["per_conn_tls_extra"]))
    print("outside the GC heap (libc malloc: mbedtls on this port), per TLS connection: "
          "VmRSS %+.0f B, VmData %+.0f B" % (r["tls_rss_per_conn"], r["tls_data_per_conn"]))
    print("after the TLS clients left: %d B (listening: %d B)"
          % (r["tls_after_close"], r["base_tls"]))
    print("heap after each further round: %s B" % ", ".join(str(x) for x in r["rounds_after_close"]))
    print("handshake (client: STARTTLS -> done): median %.1f ms, max %.1f ms; server CPU "
          "%.1f ms per connection (handshake, VER, stats)"
          % (r["handshake_ms_median"], r["handshake_ms_max"], r["server_cpu_ms_per_handshake"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)


if __name__ == "__main__":
    main()
