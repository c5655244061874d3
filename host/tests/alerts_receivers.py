"""Real alert receivers on loopback for the alerts tests, each one stoppable and restartable on
the same port: rsyslogd (imtcp + imudp, omfile), an HTTP webhook receiver checking the HMAC
(Python's hmac), aiosmtpd with AUTH LOGIN, and Mosquitto with a durable mosquitto_sub
session."""
import getpass
import hashlib
import hmac
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from powersentinel.virtual import wait_for


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


# -- syslog ------------------------------------------------------------------------------------
RSYSLOG_CONF = """global(workDirectory="{d}")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" port="{tcp}" address="127.0.0.1")
input(type="imudp" port="{udp}" address="127.0.0.1")
template(name="ps" type="string"
         string="%pri%|%syslogfacility-text%|%syslogseverity-text%|%msgid%|%hostname%|%app-name%|%structured-data%|%msg%\\n")
action(type="omfile" file="{d}/out.log" template="ps" flushOnTXEnd="on" asyncWriting="off")
"""


class Rsyslog:
    """rsyslogd -n with a private config: TCP and UDP on free loopback ports, every message one
    line of out.log (pri|facility|severity|msgid|host|app|sd|msg)."""

    def __init__(self, d):
        self.d = str(d)
        os.makedirs(self.d, exist_ok=True)
        self.tcp = free_port()
        self.udp = free_port(socket.SOCK_DGRAM)
        self.conf = os.path.join(self.d, "rsyslog.conf")
        with open(self.conf, "w") as f:
            f.write(RSYSLOG_CONF.format(d=self.d, tcp=self.tcp, udp=self.udp))
        self.proc = None

    def start(self):
        pid = os.path.join(self.d, "rsyslogd.pid")
        self.proc = subprocess.Popen(["rsyslogd", "-n", "-f", self.conf, "-i", pid],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.d, "rsyslogd.err"), "ab"),
                                     start_new_session=True)
        wait_for(lambda: _listening(self.tcp) or self.proc.poll() is not None, 15,
                 "rsyslogd to listen")
        assert self.proc.poll() is None, open(os.path.join(self.d, "rsyslogd.err")).read()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def lines(self):
        try:
            with open(os.path.join(self.d, "out.log")) as f:
                return [ln.rstrip("\n").split("|", 7) for ln in f if ln.strip()]
        except FileNotFoundError:
            return []

    def ids(self):
        """Alert ids received, in arrival order (duplicates kept)."""
        out = []
        for ln in self.lines():
            sd = ln[6]
            i = sd.find('id="')
            if i >= 0:
                out.append(int(sd[i + 4:sd.index('"', i + 4)]))
        return out


# -- webhook -----------------------------------------------------------------------------------
class Webhook:
    """A threaded HTTP server on a fixed loopback port: POSTs with a valid
    X-PowerSentinel-Signature (checked with Python's hmac) are kept and answered 204; a wrong
    or missing signature is answered 401."""

    def __init__(self, secret):
        self.secret = secret
        self.port = free_port()
        self.got = []       # (id header, parsed body) of accepted requests
        self.refused = []   # id headers answered 401
        self.srv = None
        self.thread = None

    def url(self):
        return "http://127.0.0.1:%d/hook" % self.port

    def start(self):
        box = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                want = "sha256=" + hmac.new(box.secret.encode(), body,
                                            hashlib.sha256).hexdigest()
                sig = self.headers.get("X-PowerSentinel-Signature", "")
                if not hmac.compare_digest(sig, want):
                    box.refused.append(int(self.headers["X-PowerSentinel-Id"]))
                    self.send_response(401)
                    self.end_headers()
                    return
                box.got.append((int(self.headers["X-PowerSentinel-Id"]), json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.srv = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.srv is not None:
            self.srv.shutdown()
            self.srv.server_close()
            self.thread.join(5)
        self.srv = None

    def ids(self):
        return [i for i, _ in self.got]


# -- SMTP --------------------------------------------------------------------------------------
class Smtp:
    """aiosmtpd Controller on a fixed loopback port, AUTH LOGIN required over plain TCP
    (loopback), user/password as given; messages kept with their headers."""

    def __init__(self, user, password):
        self.user = user
        self.password = password
        self.port = free_port()
        self.messages = []  # email.message.Message
        self.auths = []
        self.ctl = None

    def start(self):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult
        import email

        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                msg = email.message_from_bytes(envelope.original_content)
                msg["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
                box.messages.append(msg)
                return "250 OK"

        def auth(server, session, envelope, mechanism, data):
            ok = (mechanism == "LOGIN" and data.login.decode() == box.user
                  and data.password.decode() == box.password)
            box.auths.append((mechanism, ok))
            return AuthResult(success=ok)

        self.ctl = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                              authenticator=auth, auth_required=True,
                              auth_require_tls=False)
        self.ctl.start()

    def stop(self):
        if self.ctl is not None:
            self.ctl.stop()
        self.ctl = None

    def ids(self):
        return [int(m["X-PowerSentinel-Id"]) for m in self.messages]


# -- MQTT --------------------------------------------------------------------------------------
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
SUB = shutil.which("mosquitto_sub")
PASSWD = shutil.which("mosquitto_passwd")


def wait_until(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class Broker:
    """A private mosquitto on 127.0.0.1:<free port>, persistence in its own folder."""

    def __init__(self, d, users=None):
        self.d = d
        self.port = free_port()
        self.proc = None
        lines = ["listener %d 127.0.0.1" % self.port, "persistence true",
                 "persistence_location %s/" % d, "log_dest file %s/mosquitto.log" % d,
                 "user %s" % getpass.getuser()]  # as root it would switch to user mosquitto
        if users:
            pw = os.path.join(d, "passwd")
            for i, (u, p) in enumerate(users.items()):
                subprocess.run([PASSWD] + (["-c"] if i == 0 else []) + ["-b", pw, u, p],
                               check=True, capture_output=True, timeout=10)
            lines += ["allow_anonymous false", "password_file " + pw]
        else:
            lines.append("allow_anonymous true")
        self.conf = os.path.join(d, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def up():
            assert self.proc.poll() is None, "mosquitto exited: see " + self.d
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False
        wait_until(up, 10, "mosquitto to listen")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()  # SIGTERM: mosquitto saves its persistence file
            self.proc.wait(10)
        self.proc = None

    def pause(self, on):
        self.proc.send_signal(signal.SIGSTOP if on else signal.SIGCONT)


class Lines:
    """A process's stdout lines, collected by a thread, waited for with deadlines."""

    def __init__(self, proc):
        self.proc = proc
        self.lines = []
        self._q = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def _take(self):
        while True:
            try:
                x = self._q.get_nowait()
            except queue.Empty:
                return
            if x is not None:
                self.lines.append(x)

    def wait(self, pred, timeout, what):
        def check():
            self._take()
            return pred(self.lines)
        return wait_until(check, timeout, what + "; got %r" % self.lines[-20:])


class Sub:
    """A durable mosquitto_sub session (QoS 1): it reconnects by itself, or is restarted with
    the same client id, and the broker keeps what arrived meanwhile."""

    def __init__(self, broker, topics, auth=(), client_id="ps-test-sub"):
        self.b = broker
        self.topics = [a for t in topics for a in ("-t", t + "/#")]
        self.client_id = client_id
        self.auth = list(auth)
        self.out = []
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [SUB, "-h", "127.0.0.1", "-p", str(self.b.port), "-q", "1", "-c", "-i", self.client_id,
             "-F", "%r %q %t %p"] + self.topics + self.auth,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines = Lines(self.proc)

    def ensure(self):
        if self.proc.poll() is not None:
            self.out += self.lines.lines
            self.start()

    def all(self):
        self.lines._take()
        return self.out + self.lines.lines

    def wait(self, pred, timeout, what):
        end = time.monotonic() + timeout
        while True:
            self.ensure()
            got = self.all()
            if pred(got):
                return got
            if time.monotonic() > end:
                raise AssertionError("timed out waiting for %s; got %r" % (what, got[-20:]))
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


class Mqtt:
    """The MQTT receiver as the other receivers: a private Mosquitto (persistence on, so a
    restart keeps the durable session's queue) and a durable QoS 1 mosquitto_sub on
    <prefix>/#. stop() stops the broker; the session picks up what was queued once it is back."""

    def __init__(self, d, prefix):
        self.d = str(d)
        os.makedirs(self.d, exist_ok=True)
        self.prefix = prefix
        self.broker = Broker(self.d)
        self.port = self.broker.port
        self.sub = None

    def start(self):
        self.broker.start()
        if self.sub is None:
            self.sub = Sub(self.broker, (self.prefix,), client_id="ps-board-test")
        else:
            self.sub.ensure()

    def stop(self):
        self.broker.stop()

    def messages(self):
        """(retain, topic, payload) of everything received so far."""
        if self.sub is None:
            return []
        self.sub.ensure()
        out = []
        for line in self.sub.all():
            retain, _q, topic, payload = line.split(" ", 3)
            out.append((retain == "1", topic, payload))
        return out

    def ids(self):
        return [json.loads(p)["id"] for _r, t, p in self.messages() if t.endswith("/alert")]

    def close(self):
        self.stop()
        if self.sub is not None:
            self.sub.stop()


def dedupe(ids):
    """Ids in first-arrival order without repeats."""
    seen = set()
    out = []
    for i in ids:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def wait_ids(fn, want, timeout, what):
    """Wait until every id in want has arrived (fn() -> ids)."""
    want = set(want)
    return wait_for(lambda: want <= set(fn()), timeout, what)
