"""NUT over TLS on the virtual board, against Debian's stock upsmon (NUT 2.8.0, built with NSS).

A throwaway PKI per module (openssl): a site CA and the sentinel's certificate (CN and SAN for
127.0.0.1, the address upsmon's MONITOR line names), and an impostor CA with a certificate for the
same names. upsmon trusts the site CA through an NSS database (certutil) and runs with
CERTVERIFY 1 and FORCESSL 1.

- a tiered shutdown (mains cut, grace, FSD tier by tier) runs over TLS, and a recording proxy
  in front of one upsmon shows the wire: STARTTLS, then TLS records only (no login in clear);
- a sentinel holding the impostor's certificate, or named by a name its certificate does not
  carry, is refused by the same upsmon (no login);
- `upsc` (which tries STARTTLS and checks nothing) and a plain-text client still work against a
  sentinel with TLS configured;
- a client that stalls after STARTTLS, or sends garbage instead of a handshake, is dropped after
  nut.tls_handshake_s while another client is served, and the sampler loses no block.
- `powersentinel config push` of a site file naming the site's PEM files re-certifies the
  impostor, and the upsmon that refused it logs in.
The certificate checks of `config push` (tlscert.py) run on the host without a board.
"""
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))

import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]
from powersentinel import nutreal, siteconfig, tlscert, virtual  # noqa: E402
from support import venv_tool  # noqa: E402

pytestmark = pytest.mark.skipif(
    not nutreal.available() or not all(shutil.which(p) for p in ("openssl", "certutil")),
    reason="needs NUT binaries, openssl and certutil (make nut)")

HANDSHAKE_S = 2
MON_USER = "monuser"
MON_PW = rc.USERS[MON_USER][0]


# -- a throwaway PKI ---------------------------------------------------------------------------
def _run(*args, cwd=None):
    r = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, "%s: %s" % (" ".join(args), r.stderr)
    return r.stdout


def make_ca(d, name, days=30):
    key, pem = os.path.join(d, name + "-ca.key"), os.path.join(d, name + "-ca.pem")
    _run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", pem, "-days", str(days), "-subj", "/CN=%s CA" % name)
    return key, pem


def make_cert(d, name, ca, days=30, cn="sentinel.test", san="DNS:sentinel.test,IP:127.0.0.1"):
    key, csr, pem = (os.path.join(d, name + ext) for ext in (".key", ".csr", ".pem"))
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n" % san)
    _run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", csr, "-subj", "/CN=%s" % cn)
    _run("openssl", "x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0],
         "-CAcreateserial", "-out", pem, "-days", str(days), "-extfile", ext)
    os.chmod(key, 0o600)
    return pem, key


def nss_db(d, ca_pem):
    """An NSS database (empty password) trusting `ca_pem` for servers: upsmon's CERTPATH."""
    os.makedirs(d)
    _run("certutil", "-N", "--empty-password", "-d", "sql:" + d)
    _run("certutil", "-A", "-t", "CT,,", "-n", "siteca", "-i", ca_pem, "-d", "sql:" + d)
    return d


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    site_ca = make_ca(d, "site")
    other_ca = make_ca(d, "other")
    return {"dir": d, "ca": site_ca[1],
            "good": make_cert(d, "sentinel", site_ca),
            "impostor": make_cert(d, "impostor", other_ca),
            "nssdb": nss_db(os.path.join(d, "nss"), site_ca[1])}


def tls_config(cert, key, **over):
    """A reliability config (rc.make_config) with the sentinel's certificate, as config push
    makes it from the site file's PEM files."""
    cert_b64, key_b64 = tlscert.load_pair(cert, key)
    base = {"nut.tls_cert": cert_b64, "nut.tls_key": key_b64,
            "nut.tls_handshake_s": HANDSHAKE_S}
    base.update(over)
    return rc.make_config(**base)


def tls_upsmon(pki, monitors, **kw):
    conf = "\n".join(['CERTPATH "sql:%s"' % pki["nssdb"], "CERTVERIFY 1", "FORCESSL 1"])
    return nutreal.RealUpsmon(monitors, extra_conf=conf, **kw)


def journal_tls(board, from_seq=0):
    with rc.link(board) as lk:
        recs, _, _ = rc.read_log(lk, from_seq)
    return [r["data"] for r in recs if r["type"] == "nut_tls"]


def status(board):
    with rc.link(board) as lk:
        return lk.request("status")


# -- a loopback proxy that records what the client sends ------------------------------------------
class RecordingProxy:
    def __init__(self, target):
        self.target = target
        self.sent = bytearray()   # client -> sentinel, every connection, in order
        self.lock = threading.Lock()
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False), daemon=True).start()

    def _pump(self, a, b, record):
        try:
            while True:
                d = a.recv(4096)
                if not d:
                    break
                if record:
                    with self.lock:
                        self.sent += d
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closed = True
        self.lsock.close()


# -- the sentinel with the site's certificate: a tiered shutdown over TLS -----------------------------
def test_stock_upsmon_runs_a_tiered_shutdown_over_tls(pki, tmp_path):
    cfg = tls_config(*pki["good"], **{
        "policy.grace_s": 2,
        "tiers": [{"name": "apps", "max_wait_s": 20, "delay_s": 0, "hosts": []},
                  {"name": "databases", "max_wait_s": 20, "delay_s": 0, "hosts": []}]})
    b = rc.Board(str(tmp_path / "b"), cfg)
    proxy = None
    mons = []
    try:
        b.wait_serving(15)
        overruns0 = status(b)["adc"]["overruns"]
        proxy = RecordingProxy(b.nut)
        apps = tls_upsmon(pki, [nutreal.Monitor("apps", "127.0.0.1", proxy.port, MON_USER,
                                                MON_PW)])
        dbs = tls_upsmon(pki, [nutreal.Monitor("databases", "127.0.0.1", b.nut[1], MON_USER,
                                               MON_PW)])
        mons = [apps, dbs]
        for m in mons:
            m.start()
        for m in mons:
            m.wait_logged_in(15)
            assert "Connecting in SSL to '127.0.0.1'" in m.log(), m.log()[-3000:]
        # the sentinel saw two TLS handshakes and both clients logged in after them
        recs = virtual.wait_for(lambda: [r for r in journal_tls(b) if r.get("result") == "ok"]
                                or None, 5, "nut_tls records")
        assert recs[0]["addr"] == "127.0.0.1"
        # the wire: STARTTLS in clear, then TLS records (0x16 handshake, 0x17 data) only
        with proxy.lock:
            wire = bytes(proxy.sent)
        assert wire.startswith(b"STARTTLS\n"), wire[:40]
        assert wire[9:10] == b"\x16" and wire[10:11] == b"\x03", wire[9:20]
        assert b"USERNAME" not in wire and MON_PW.encode() not in wire and b"LOGIN" not in wire

        # the right CA but the wrong name: "localhost" is not in the certificate
        wrong = tls_upsmon(pki, [nutreal.Monitor("apps", "localhost", b.nut[1], MON_USER,
                                                 MON_PW)])
        try:
            wrong.start()
            assert wrong.wait_log("Certificate validation failed for localhost", 15), \
                wrong.log()[-3000:]
            assert "Logged into UPS" not in wrong.log()
        finally:
            wrong.stop()
        with b.nut_client() as c:
            assert c.cmd("GET NUMLOGINS apps") == "NUMLOGINS apps 1"

        t0 = time.time()
        b.wires({"mains": "off"})
        t_apps = apps.wait_shutdown(30)
        assert t_apps is not None, apps.log()[-3000:]
        t_dbs = dbs.wait_shutdown(30)
        assert t_dbs is not None, dbs.log()[-3000:]
        assert t0 < t_apps < t_dbs, (t0, t_apps, t_dbs)   # tier order: apps first
        assert status(b)["adc"]["overruns"] == overruns0  # TLS cost the sampler nothing
        print("tiered shutdown over TLS: apps %.2f s, databases %.2f s after the mains cut"
              % (t_apps - t0, t_dbs - t0))
    finally:
        for m in mons:
            m.stop()
        if proxy is not None:
            proxy.close()
        b.stop()


# -- the impostor: the same upsmon refuses it; plain clients and bad clients --------------------------
@pytest.fixture(scope="module")
def impostor(pki, tmp_path_factory):
    b = rc.Board(str(tmp_path_factory.mktemp("imp") / "b"), tls_config(*pki["impostor"]))
    try:
        b.wait_serving(15)
        yield b
    finally:
        b.stop()


def test_upsmon_refuses_a_sentinel_with_another_cas_certificate(pki, impostor):
    b = impostor
    with rc.link(b) as lk:
        s0 = rc.read_log(lk)[2] or 0
    mon = tls_upsmon(pki, [nutreal.Monitor("apps", "127.0.0.1", b.nut[1], MON_USER, MON_PW)])
    try:
        mon.start()
        # upsmon tries, fails the certificate check, and never logs in
        fails = virtual.wait_for(lambda: [r for r in journal_tls(b, s0 + 1)
                                          if r.get("result") == "failed"] or None,
                                 15, "a failed handshake on the sentinel")
        assert fails[0]["addr"] == "127.0.0.1"
        assert mon.wait_log("Certificate validation failed for 127.0.0.1", 10), mon.log()[-3000:]
        assert "Logged into UPS" not in mon.log(), mon.log()[-3000:]
        with b.nut_client() as c:
            assert c.cmd("LIST CLIENT apps") == "BEGIN LIST CLIENT apps\nEND LIST CLIENT apps"
        print("upsmon's refusal: %s" % [ln for ln in mon.log().splitlines()
                                         if "ertificat" in ln or "SSL" in ln][:3])
    finally:
        mon.stop()


def test_upsc_and_plain_text_clients_still_work_with_tls_configured(impostor):
    # Debian's upsc tries STARTTLS by itself and goes on without checking the certificate
    out = subprocess.run(["upsc", "apps@127.0.0.1:%d" % impostor.nut[1], "ups.status"],
                         capture_output=True, text=True, timeout=15)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "OL"
    assert "Connected to NUT server 127.0.0.1 in SSL" in out.stderr, out.stderr
    # a client that never sends STARTTLS is served in plain text, as by upsd
    with impostor.nut_client() as c:
        assert c.cmd("GET VAR apps ups.status") == 'VAR apps ups.status "OL"'
        assert c.login(MON_USER, MON_PW) == ["OK", "OK", "OK"]
        assert c.cmd("LOGOUT") == "OK Goodbye"


def test_stalled_and_garbage_handshakes_time_out_and_others_are_served(impostor):
    b = impostor
    before = status(b)
    t0 = time.monotonic()
    stalled = b.nut_client(timeout=HANDSHAKE_S + 5)
    assert stalled.cmd("STARTTLS") == "OK STARTTLS"
    garbage = b.nut_client(timeout=HANDSHAKE_S + 5)
    assert garbage.cmd("STARTTLS") == "OK STARTTLS"
    garbage.send(b"GET VAR apps ups.status\n" * 4)  # plain text where a ClientHello belongs
    # while both hang, another client is answered at once
    with b.nut_client() as c:
        assert c.cmd("GET VAR apps ups.status") == 'VAR apps ups.status "OL"'
        assert c.cmd("STARTTLS") == "OK STARTTLS"  # and may start TLS itself
    # both are disconnected: garbage at once (no TLS record), the stalled one after the bound
    for sock in (garbage, stalled):
        with pytest.raises((EOFError, ConnectionResetError)):
            sock.readline()
    took = time.monotonic() - t0
    assert took < HANDSHAKE_S + 2, took
    # ten good handshakes in a row (a client that checks nothing): each costs the event loop
    # one ECDHE + ECDSA computation, which the status's loop stall shows
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    hs = []
    for _ in range(10):
        with b.nut_client() as c:
            assert c.cmd("STARTTLS") == "OK STARTTLS"
            h0 = time.perf_counter()
            t = ctx.wrap_socket(c.sock)
            hs.append(time.perf_counter() - h0)
            t.sendall(b"GET VAR apps ups.status\n")
            assert t.recv(100) == b'VAR apps ups.status "OL"\n'
            t.close()
    after = status(b)
    assert after["adc"]["overruns"] == before["adc"]["overruns"]
    results = [r.get("result") for r in journal_tls(b)]
    assert "timeout" in results and "failed" in results, results
    print("stalled handshake dropped after %.2f s (bound %d s); 10 handshakes median %.1f ms; "
          "adc overruns %d -> %d; max loop stall %s ms"
          % (took, HANDSHAKE_S, sorted(hs)[5] * 1000, before["adc"]["overruns"],
             after["adc"]["overruns"], after["loop"]["max_stall_ms"]))


def test_zz_config_push_installs_the_sites_certificate_and_upsmon_logs_in(pki, impostor,
                                                                          tmp_path):
    """Last on the impostor board: the user's path. The board's config pulled as a site file,
    the certificate named as PEM files, `powersentinel config push`, and the upsmon that refused
    the impostor now logs in over TLS."""
    b = impostor
    with rc.link(b) as lk:
        cfg, _ = siteconfig.fetch(lk)
    lines = [ln for ln in siteconfig.to_toml(cfg).splitlines()
             if not ln.startswith(("tls_cert =", "tls_key ="))]
    at = lines.index(next(ln for ln in lines if ln.startswith("[nut]"))) + 1
    lines[at:at] = ['tls_cert_file = "%s"' % pki["good"][0], 'tls_key_file = "%s"' % pki["good"][1]]
    site = tmp_path / "site.toml"
    site.write_text("\n".join(lines) + "\n")
    r = subprocess.run([venv_tool("powersentinel"), "config", "push", str(site), "--port",
                        "virtual:" + b.dir], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "~ nut.tls_cert: changed" in r.stdout and "~ nut.tls_key: changed" in r.stdout
    assert cfg["nut"]["tls_key"] not in r.stdout  # the old key is never shown, nor the new
    assert tlscert.load_pair(*pki["good"])[1] not in r.stdout
    assert "runs the new configuration" in r.stdout, r.stdout
    b.refresh()
    b.wait_serving(15)
    mon = tls_upsmon(pki, [nutreal.Monitor("apps", "127.0.0.1", b.nut[1], MON_USER, MON_PW)])
    try:
        mon.start()
        mon.wait_logged_in(15)
        assert "Connecting in SSL to '127.0.0.1'" in mon.log()
    finally:
        mon.stop()


# -- config push's certificate checks (host only) ----------------------------------------------------
def test_config_push_checks_the_pem_pair(pki, tmp_path):
    d = pki["dir"]
    site = tmp_path / "site.toml"

    def load(cert, key):
        site.write_text('version = 1\n[nut]\ntls_cert_file = "%s"\ntls_key_file = "%s"\n'
                        % (cert, key))
        return siteconfig.load(str(site))

    cert, key = pki["good"]
    cfg = load(cert, key)
    assert cfg["nut"]["tls_cert"] and cfg["nut"]["tls_key"]
    assert "tls_cert_file" not in cfg["nut"]
    changes = siteconfig.diff({"nut": {"tls_cert": "", "tls_key": ""}}, cfg)
    assert "~ nut.tls_key: changed" in changes
    assert not any(cfg["nut"]["tls_key"] in c for c in changes)  # the key is never shown

    cases = [
        (cert, pki["impostor"][1], "does not belong to the certificate"),
        (cert, os.path.join(d, "missing.key"), "no such key file"),
        (key, key, "not a usable certificate"),
        (make_cert(d, "expired", (os.path.join(d, "site-ca.key"), pki["ca"]), days=-1)[0], key,
         "certificate expired"),
    ]
    loose = os.path.join(d, "loose.key")
    with open(key) as f, open(loose, "w") as g:
        g.write(f.read())
    os.chmod(loose, 0o644)
    cases.append((cert, loose, "readable by others"))
    enc = os.path.join(d, "enc.key")
    _run("openssl", "pkey", "-in", key, "-aes256", "-passout", "pass:secret", "-out", enc)
    os.chmod(enc, 0o600)
    cases.append((cert, enc, "not a usable private key"))
    for c, k, why in cases:
        with pytest.raises(siteconfig.SiteConfigError) as e:
            load(c, k)
        assert why in str(e.value.problems), (why, [str(p) for p in e.value.problems])
        assert e.value.problems[0].line == 3  # the line naming the certificate file
