# The sentinel's asyncio application: builds the tasks around the pure logic modules and runs
# them. main.py calls main(); the virtual board runs exactly this.
#
#   sampler ──> MainsMonitor ─┐
#   UPS link / contacts ──────┼─> control loop: StateMachine.update ─> Sequencer ─> NutServer
#   battery model ────────────┘        │                                    (FSD per tier)
#                                      └─> journal, console events, persisted plan
#   supervisor: feeds the watchdog only while every task reports progress.
import asyncio
import gc
import json
import os
import sys
import time

from sentinel import console
from sentinel.version import PROTOCOL, VERSION

CONFIG_PATH = "/config.json"
STATE_PATH = "/state.json"
BOOTS_PATH = "/boots.json"
UPLOAD_PATH = "/config.upload"
WDT_MS = 8000            # fits the RP2040's 8388 ms maximum
STABLE_UPTIME_MS = 60000  # a boot that lived this long resets the crash counter
SAFE_MODE_BOOTS = 3       # this many short-lived boots in a row: safe mode
_EPOCH_VALID = 1600000000  # an RTC reading before 2020 means the clock was never set

# Tasks the supervisor requires fresh progress from, and how fresh (ms).
_ALIVE_LIMITS = {"sampler": 2000, "control": 2000, "ups": 15000}


def _out(data):
    w = getattr(sys.stdout, "buffer", sys.stdout)
    w.write(data)


def _write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Clock:
    """Monotonic milliseconds that never wrap (ticks_ms wraps at 2^30 on MicroPython)."""

    def __init__(self):
        self.last = time.ticks_ms()
        self.ms = 0

    def __call__(self):
        t = time.ticks_ms()
        self.ms += time.ticks_diff(t, self.last)
        self.last = t
        return self.ms


class StdinReader:
    """Non-blocking console input. A stream read(n) on the console blocks until n bytes (or a
    newline) arrive, which would freeze every task on a half line; so poll, then take bytes
    one at a time while more are ready."""

    def __init__(self):
        import select
        self.s = getattr(sys.stdin, "buffer", sys.stdin)
        self.poll = select.poll()
        self.poll.register(self.s, select.POLLIN)

    async def read(self, n):
        while True:
            out = b""
            while len(out) < n and self.poll.poll(0):
                c = self.s.read(1)
                if not c:
                    return out
                out += c if isinstance(c, bytes) else c.encode()
            if out:
                return out
            await asyncio.sleep_ms(20)


class Sentinel:
    def __init__(self, board, cfg, cfg_source="defaults", cfg_errors=()):
        from sentinel.battery import BatteryModel
        from sentinel.capture import Capture
        from sentinel.journal import Journal
        from sentinel.mains import MainsMonitor
        from sentinel.statemachine import Inputs, StateMachine

        self.board = board
        self.cfg = cfg
        self.cfg_source = cfg_source
        self.cfg_errors = list(cfg_errors)
        self.now = Clock()
        self.t_boot = self.now()
        self.alive = {}
        self.safe_mode = False
        self.console = console.ConsoleServer(_out, {
            "ping": lambda req: "pong",
            "identify": self.op_identify,
            "status": self.op_status,
            "config_get": self.op_config_get,
            "config_put_chunk": self.op_config_put_chunk,
            "config_put_commit": self.op_config_put_commit,
            "log_read": self.op_log_read,
            "capture_list": self.op_capture_list,
            "capture_read": self.op_capture_read,
            "drill_start": self.op_drill_start,
            "time_set": self.op_time_set,
        })
        self.journal = Journal("/", epoch_fn=board.time)
        m = cfg["mains"]
        self.monitor = MainsMonitor(m)
        self.capture = Capture(m)
        self.events = []          # recent mains events for status (bounded)
        self.mains_seen = False   # first reading done (NUT answers WAIT before)
        ups = cfg["ups"]
        self.link = None
        self.contacts = None
        if ups["link"] == "q1":
            from sentinel.upslink import UpsLink
            self.link = UpsLink(board.uart(ups["baud"]), time.ticks_ms,
                                progress=lambda: self.progress("ups"), poll_ms=ups["poll_ms"],
                                link_lost_s=ups["link_lost_s"])
        elif ups["link"] == "contacts":
            from sentinel.contacts import ContactMonitor, parse_rules
            lines = board.contacts().lines
            self.contacts = ContactMonitor(parse_rules(ups["contacts"], lines), lines,
                                           ups["debounce_ms"])
        self.battery = BatteryModel(runtime_full_s=ups["battery_runtime_s"])
        self.inputs = Inputs()
        saved = _read_json(STATE_PATH)
        now = self.now()
        # Time spent rebooting counts towards the plan's timers (grace, max_wait) when the RTC
        # can tell it: a sentinel that reboots on battery must not restart its grace period.
        down_ms = 0
        if saved and saved.get("at", 0) > _EPOCH_VALID and board.time() > _EPOCH_VALID:
            down_ms = max(0, min(board.time() - saved["at"], 86400)) * 1000
        if saved and saved.get("sm"):
            self.sm = StateMachine.from_dict(cfg, saved["sm"], now, elapsed_ms=down_ms)
        else:
            self.sm = StateMachine(cfg, now)
        from sentinel.coverage import Coverage
        from sentinel.health import Health
        from sentinel.nut.server import NutServer
        from sentinel.sequencer import ContactLoadOff, Sequencer
        from sentinel.wol import Sender

        self.nut = NutServer(cfg["nut"], self, self.now)
        rec = cfg["recovery"]
        sender = Sender(rec["wol_broadcast"], rec["wol_port"])
        out_line = ups.get("shutdown_output")
        if self.link is not None:
            actions = self.link
        elif out_line is not None:
            actions = ContactLoadOff(self._pulse_output)
        else:
            actions = None
        jfn = self._journal_fn
        self.seq = Sequencer(cfg, self.nut, actions, jfn, self.now, wake=sender.send,
                             health=Health(self.nut))
        self.cov = Coverage(cfg, self.nut, jfn, now)
        self._boot_records = []
        if saved and saved.get("seq"):
            self.seq.restore(saved["seq"], now, elapsed_ms=down_ms)
        if self.sm.state == "LOAD_OFF" and board.reset_cause() == "power_on":
            # we were powered by the UPS load we asked to cut: it has been cut
            self._boot_records = list(self.sm.load_off_done(now))
        self.upload = None  # (offset) of a config upload in progress
        self.errors = 0     # hook failures (reported in status)
        self.reboot = False
        self.main_task = None
        self._cov_at = -10 ** 9

    # -- helpers -----------------------------------------------------------------------------
    def progress(self, name):
        self.alive[name] = self.now()

    def log(self, kind, data=None, critical=False):
        seq = self.journal.append(kind, data, now_ms=self.now(), critical=critical)
        self.console.event("log", seq=seq, type=kind, data=data)
        return seq

    def _journal_fn(self, kind, data, now=None, critical=False):
        return self.log(kind, data, critical)

    async def _pulse_output(self):
        # a contact-closure UPS: close its shutdown input for a second
        out = self.board.outputs()
        line = self.cfg["ups"]["shutdown_output"]
        out.set(line, 1)
        await asyncio.sleep_ms(1000)
        out.set(line, 0)
        return True

    def stale(self):
        """Sensor data too old to trust (a hung sampler makes NUT clients fail safe)."""
        t = self.alive.get("sampler")
        return t is None or self.now() - t > self.cfg["nut"]["stale_s"] * 1000

    # -- NUT provider ------------------------------------------------------------------------
    def tier_names(self):
        names = [t["name"] for t in self.cfg["tiers"]]
        return names or ["sentinel"]

    def ups_names(self):
        return [(n, "Power Sentinel tier %s" % n) for n in self.tier_names()]

    def ups_tokens(self):
        i = self.inputs
        toks = ["OB" if i.ups_on_battery or self.sm.on_battery else "OL"]
        if i.ups_low_battery:
            toks.append("LB")
        return " ".join(toks)

    def status(self, ups):
        # OB/OL only: a stock upsmon that sees OB+LB shuts its server down by itself, which
        # would break tier order; the sentinel acts on LB and tells each tier when with FSD
        if not self.mains_seen:
            return None
        i = self.inputs
        return "OB" if i.ups_on_battery or self.sm.on_battery else "OL"

    def vars(self, ups):
        if self.stale():
            return None
        mon = self.monitor
        b = self.battery
        out = [("battery.charge", int(b.charge_pct)), ("battery.runtime", int(b.runtime_s)),
               ("input.voltage", round(mon.urms, 1)),
               ("input.frequency", round(mon.freq or 0.0, 2)),
               ("device.mfr", "Power Sentinel"), ("device.model", self.board.name),
               ("device.type", "ups"), ("driver.name", "powersentinel"),
               ("driver.version", VERSION), ("ups.mfr", "Power Sentinel"),
               ("ups.model", "sentinel %s" % self.board.name),
               ("sentinel.state", self.sm.state), ("sentinel.tier", ups),
               ("sentinel.tier.phase", self.seq.phase(ups)),
               ("sentinel.plan", self.sm.plan_id)]
        out.extend(self.cov.nut_vars(ups))
        if self.link is not None and self.link.link_ok:
            load = self.link.load
            if load is not None:
                out.append(("ups.load", load))
        return out

    # -- console ops -------------------------------------------------------------------------
    def op_identify(self, req):
        return {"firmware": VERSION, "protocol": PROTOCOL, "board": self.board.name,
                "device_id": self.board.unique_id(),
                "mpy": getattr(sys.implementation, "_mpy", None),
                "uptime_ms": self.now() - self.t_boot, "reset_cause": self.board.reset_cause(),
                "config_source": self.cfg_source, "config_errors": self.cfg_errors,
                "safe_mode": self.safe_mode}

    def op_status(self, req=None):
        gc.collect()
        mon = self.monitor
        f = mon.freq
        ups = {"link": "none", "status": self.ups_tokens(),
               "charge": round(self.battery.charge_pct), "runtime": int(self.battery.runtime_s),
               "source": self.battery.charge_source}
        if self.link is not None:
            ups["link"] = self.link.state
        elif self.contacts is not None:
            ups["link"] = "contacts"
            ups["contacts"] = self.contacts.statuses()
            ups["chatter"] = sum(self.contacts.deb.chatter)
        sm = self.sm
        now = self.now()
        tiers = self.cov.status(now)
        for t in tiers:
            t["phase"] = self.seq.phase(t["name"])
            t["fsd"] = self.nut.fsd(t["name"])
        return {"mains": {"v": round(mon.urms, 1), "hz": None if f is None else round(f, 3),
                          "lost": mon.lost, "good": mon.good, "events": self.events[-5:]},
                "ups": ups,
                "state": {"name": sm.state, "cause": self._last_cause(), "ponr": sm.ponr,
                          "plan_id": sm.plan_id, "drill": sm.drill},
                "tiers": tiers, "plan": self.seq.summary(now), "drill": self.seq.report,
                "heap": {"free": gc.mem_free(), "alloc": gc.mem_alloc()},
                "errors": self.errors,
                "uptime_ms": self.now() - self.t_boot, "time": self.board.time()}

    def _last_cause(self):
        h = self.sm.history()
        return h[-1][3] if h else "boot"  # pyright: ignore[reportOptionalSubscript]

    def op_config_get(self, req):
        return {"config": self.cfg, "source": self.cfg_source}

    def op_config_put_chunk(self, req):
        off = req.get("offset")
        text = req.get("text")
        if not isinstance(off, int) or not isinstance(text, str) or len(text) > 2048:
            raise ValueError("config_put_chunk needs offset (int) and text (str, <= 2048)")
        if off == 0:
            self.upload = 0
            mode = "w"
        elif self.upload != off:
            raise ValueError("chunk at %d, expected %s: restart the upload" % (off, self.upload))
        else:
            mode = "a"
        with open(UPLOAD_PATH, mode) as f:
            f.write(text)
        self.upload = off + len(text)
        return {"received": self.upload}

    def op_config_put_commit(self, req):
        import hashlib
        import binascii
        from sentinel import config

        if self.upload is None:
            raise ValueError("no config upload in progress")
        with open(UPLOAD_PATH) as f:
            text = f.read()
        self.upload = None
        digest = binascii.hexlify(hashlib.sha256(text.encode()).digest()).decode()
        if len(text) != req.get("length") or digest != req.get("sha256"):
            raise ValueError("config upload damaged (length or sha256 mismatch): nothing changed")
        try:
            obj = json.loads(text)
        except ValueError:
            raise ValueError("config is not valid JSON: nothing changed")
        errors = config.save(obj, CONFIG_PATH)
        del config
        _drop_validator()
        try:
            os.remove(UPLOAD_PATH)
        except OSError:
            pass
        if errors:
            raise ValueError("config refused, nothing changed: " + "; ".join(errors))
        self.log("config", {"installed": True}, critical=True)
        # apply by rebooting: every task restarts from the new config, as after a power cycle
        asyncio.create_task(self._reboot_soon())
        return {"installed": True, "rebooting": True}

    async def _reboot_soon(self):
        # let the reply leave, then end the event loop; main() resets outside it (a reset
        # raised inside a task would only end that task)
        await asyncio.sleep_ms(300)
        self.journal.flush()
        self.reboot = True
        if self.main_task is not None:
            self.main_task.cancel()

    def op_log_read(self, req):
        # Only what is on flash is handed out: a record still batched in RAM could be lost to a
        # power cut and its sequence number reused, and the host would keep a different record.
        self.journal.flush()
        frm = req.get("from_seq", 0)
        n = min(int(req.get("max", 32)), 32)
        recs = self.journal.read(frm, n)
        return {"records": [{"seq": r[0], "epoch": r[1], "ms": r[2], "type": r[3], "data": r[4]}
                            for r in recs],
                "first": self.journal.first_seq(), "last": self.journal.last_seq()}

    def op_capture_list(self, req):
        out = []
        for cid, size in self.journal.list_captures():
            out.append({"id": cid, "bytes": size})
        return out

    def op_capture_read(self, req):
        import binascii
        cid = req.get("capture_id")  # "id" is the request's own id
        off = int(req.get("offset", 0))
        n = min(int(req.get("length", 1536)), 1536)
        c = self.journal.read_capture(cid)
        if c is None:
            raise ValueError("no capture %r" % (cid,))
        meta, data = c
        chunk = data[off:off + n]
        return {"meta": meta, "total": len(data),
                "data_b64": binascii.b2a_base64(chunk).decode().strip()}

    def op_drill_start(self, req):
        self.inputs.commands.append("drill")
        return {"started": True}

    def op_time_set(self, req):
        epoch = req.get("epoch")
        if not isinstance(epoch, (int, float)) or epoch < 1600000000:
            raise ValueError("time_set needs epoch (seconds since 1970, after 2020)")
        self.board.set_time(epoch)
        return {"time": self.board.time()}

    # -- sampler hooks -----------------------------------------------------------------------
    def on_mains_change(self, mon):
        self.console.event("mains", lost=mon.lost, good=mon.good, v=round(mon.urms, 1))
        if mon.lost:
            self.log("mains_lost", {"v": round(mon.urms, 1)}, critical=True)

    def on_mains_event(self, ev):
        ev = {"type": ev["kind"], "start_ms": ev["start_ms"], "duration_ms": ev["duration_ms"],
              "pct": ev["pct"], "v": ev.get("residual_v", ev.get("peak_v")),
              "trig": ev["trig"]}
        self.events.append(ev)
        if len(self.events) > 8:
            self.events.pop(0)
        self.log("mains_event", ev)
        self.console.event("event", **ev)

    def on_capture(self, meta, data):
        m = self.cfg["mains"]
        meta["nominal_v"] = m["nominal_v"]
        meta["nominal_hz"] = m["nominal_hz"]
        meta["sample_rate"] = meta["rate"]
        # the capture starts pre_ms before the disturbance it belongs to
        meta["start_epoch"] = self.board.time() - (self.monitor.samples - meta["t0"]) \
            // meta["rate"]
        ev = self.events[-1] if self.events else None
        meta["event"] = ev["type"] if ev and ev.get("trig") == meta["trig"] else "disturbance"
        # written straight from the capture slot: no 4 KB copy on the heap
        self.journal.save_capture(meta, data, now_ms=self.now())

    def _guard(self, name, fn):
        """A failing hook (flash full, heap exhausted) is logged, never allowed to stop the
        sampler: losing one capture is better than losing mains sensing."""
        def call(*args):
            try:
                fn(*args)
            except Exception as e:
                self.errors += 1
                try:
                    self.console.event("error", where=name, error=repr(e))
                except Exception:
                    pass
        return call

    def on_block(self, mon):
        self.mains_seen = True

    # -- tasks -------------------------------------------------------------------------------
    async def sampler_task(self):
        from sentinel import sampler
        m = self.cfg["mains"]
        adc = self.board.adc(m["sample_rate"], m["block_len"])
        await sampler.run(adc, self.monitor, self.capture, on_block=self.on_block,
                          progress=lambda: self.progress("sampler"),
                          on_change=self._guard("mains", self.on_mains_change),
                          on_event=self._guard("event", self.on_mains_event),
                          on_capture=self._guard("capture", self.on_capture))

    async def contacts_task(self):
        c = self.board.contacts()
        mon = self.contacts
        if mon is None:
            return
        chatter = 0
        last_report = -10 ** 9
        while True:
            if mon.update(c.read(), time.ticks_ms()):
                self.log("contacts", {"status": mon.statuses()})
            total = sum(mon.deb.chatter)
            if total != chatter and self.now() - last_report > 10000:
                # an anomaly worth a record, at most every 10 s: loose wire, missing pull-up
                self.log("contact_chatter", {"edges": total - chatter,
                                             "lines": [x[0] for x in mon.line_states() if x[3]]})
                chatter = total
                last_report = self.now()
            self.progress("ups")
            await asyncio.sleep_ms(10)

    def _gather_inputs(self):
        i = self.inputs
        mon = self.monitor
        i.mains_lost = mon.lost
        i.mains_good = mon.good
        # during the monitor's first cycles its flags mean nothing yet: not "out of tolerance"
        i.mains_present = not self.stale() and (
            mon.good or mon.lost or self.now() - self.t_boot > 2000)
        if self.link is not None:
            ok = bool(self.link.link_ok)
            toks = self.link.status
            i.ups_link_configured = True
            i.ups_link_ok = ok
            i.ups_on_battery = ok and ("OB" in toks)
            i.ups_low_battery = ok and ("LB" in toks)
            i.ups_charge = self.link.charge if ok else None
            i.ups_runtime = None
            i.ups_output_off = ok and ("OFF" in toks)
        elif self.contacts is not None:
            i.ups_link_configured = True
            i.ups_link_ok = bool(self.contacts.ready)
            i.ups_on_battery = bool(self.contacts.has("OB"))
            i.ups_low_battery = bool(self.contacts.has("LB"))
            i.ups_output_off = bool(self.contacts.has("OFF"))
        else:
            i.ups_link_configured = False
        return i

    async def control_task(self):
        # A failing iteration is logged and does not count as progress: if it keeps failing,
        # the supervisor stops feeding the watchdog and the board restarts (then safe mode).
        while True:
            try:
                self._control_step()
                self.progress("control")
            except Exception as e:
                self.errors += 1
                self.console.event("error", where="control", error=repr(e))
            await asyncio.sleep_ms(100)

    def _control_step(self):
        now = self.now()
        i = self._gather_inputs()
        self.battery.update(now, i.ups_on_battery or self.sm.on_battery,
                            getattr(i, "ups_charge", None))
        i.ups_charge = self.battery.charge_pct
        i.ups_runtime = self.battery.runtime_s
        before = (self.sm.state, self.sm.plan_id)
        self._records(self.sm.update(now, i))
        i.commands = []
        self._records(list(self.seq.step(now, self.sm)))
        if self.sm.state == "LOAD_OFF" and self.link is not None and self.link.link_ok \
                and "OFF" in self.link.status:
            self._records(self.sm.load_off_done(now))
        if now - self._cov_at >= 2000:
            self._cov_at = now
            self.cov.update(now, quiet=self.sm.state != "ONLINE")
        if (self.sm.state, self.sm.plan_id) != before or self.seq.dirty:
            self.persist()
        self.journal.poll(now)

    def _records(self, recs):
        for rec in recs or ():
            t, frm, to, cause, detail = rec
            data = {"from": frm, "to": to, "cause": cause, "detail": detail}
            self.log("state" if frm != to else "policy", data, critical=frm != to)
            if frm != to:
                self.console.event("state", **data)

    def persist(self):
        """The plan's progress, so a reboot mid-sequence resumes where it was."""
        try:
            now = self.now()
            _write_atomic(STATE_PATH, json.dumps({"sm": self.sm.to_dict(now),
                                                   "seq": self.seq.to_dict(now),
                                                   "at": self.board.time()}))
        except OSError as e:
            self.cfg_errors.append("cannot persist plan: %r" % (e,))

    async def reporter_task(self):
        while True:
            self.console.event("status", **self.op_status())
            hb = getattr(self.board, "heartbeat", None)
            if hb:
                hb({"heap_free": gc.mem_free(), "state": self.sm.state})
            if self.now() - self.t_boot > STABLE_UPTIME_MS:
                mark_stable()
            gc.collect()
            await asyncio.sleep_ms(1000)

    async def supervisor_task(self):
        """Feed the watchdog only while every task makes progress: a stuck sampler resets the
        board instead of leaving it saying "online"."""
        limits = dict(_ALIVE_LIMITS)
        if self.link is None and self.contacts is None:
            del limits["ups"]
        self.board.watchdog_start(WDT_MS)
        grace_until = self.now() + 5000
        while True:
            now = self.now()
            stuck = [n for n, lim in limits.items()
                     if now - self.alive.get(n, -10 ** 9) > lim]
            if not stuck or now < grace_until:
                self.board.watchdog_feed()
            elif not getattr(self, "_stuck_logged", False):
                self._stuck_logged = True
                self.log("stuck", {"tasks": stuck}, critical=True)
                self.journal.flush()
            await asyncio.sleep_ms(500)

    async def console_task(self):
        await self.console.serve(StdinReader())

    async def nut_task(self):
        host, port = self.board.nut_bind()
        await self.nut.start(host, port)

    async def run(self):
        self.main_task = asyncio.current_task()
        await self.board.start()
        tasks = [asyncio.create_task(t) for t in self.board.background()]
        self.log("boot", {"fw": VERSION, "cause": self.board.reset_cause(),
                          "config": self.cfg_source}, critical=True)
        for e in self.cfg_errors:
            self.log("config_error", {"error": e})
        self._records(self._boot_records)
        tasks.append(asyncio.create_task(self.sampler_task()))
        tasks.append(asyncio.create_task(self.console_task()))
        tasks.append(asyncio.create_task(self.control_task()))
        tasks.append(asyncio.create_task(self.reporter_task()))
        if self.link is not None:
            tasks.append(asyncio.create_task(self.link.run()))
        elif self.contacts is not None:
            tasks.append(asyncio.create_task(self.contacts_task()))
        await self.nut_task()
        tasks.append(asyncio.create_task(self.supervisor_task()))
        hello = getattr(self.board, "hello", None)
        if hello:
            hello({"fw": VERSION, "protocol": PROTOCOL})
        self.console.event("boot", firmware=VERSION, cause=self.board.reset_cause(),
                           config=self.cfg_source)
        await asyncio.gather(*tasks)


def _drop_validator():
    """The validator and its schema tables (~30 KB) are needed only at boot and for a config
    push: forget them. The package keeps a reference too, so drop both."""
    pkg = sys.modules.get("sentinel")
    for name in ("config", "schema", "passwd"):
        sys.modules.pop("sentinel." + name, None)
        if pkg is not None and name in pkg.__dict__:
            delattr(pkg, name)
    gc.collect()


# -- boot-loop protection ------------------------------------------------------------------------
def count_boot(cause):
    """Crashes in a row soon after boot. Only resets the firmware caused (watchdog, crash) count:
    a power cut is no reason to give up shutdown authority."""
    b = _read_json(BOOTS_PATH) or {}
    n = int(b.get("unstable", 0)) + 1 if cause in ("wdt", "crash", "unknown") else 0
    try:
        _write_atomic(BOOTS_PATH, json.dumps({"unstable": n}))
    except OSError:
        pass
    return n


def mark_stable():
    b = _read_json(BOOTS_PATH)
    if b and b.get("unstable"):
        try:
            _write_atomic(BOOTS_PATH, json.dumps({"unstable": 0}))
        except OSError:
            pass


async def safe_mode(board, reason, cfg_source, errors):
    """Too many crashes soon after boot: no watchdog, no shutdown authority; the console still
    answers so an operator can see why and redeploy or push a config."""
    c = console.ConsoleServer(_out, {
        "ping": lambda req: "pong",
        "identify": lambda req: {"firmware": VERSION, "protocol": PROTOCOL,
                                 "board": board.name, "safe_mode": True, "reason": reason,
                                 "reset_cause": board.reset_cause(),
                                 "config_source": cfg_source, "config_errors": errors},
        "status": lambda req: {"safe_mode": True, "reason": reason,
                               "heap": {"free": gc.mem_free(), "alloc": gc.mem_alloc()}},
    })
    await board.start()
    hello = getattr(board, "hello", None)
    if hello:
        hello({"fw": VERSION, "protocol": PROTOCOL, "safe_mode": True})
    c.event("safe_mode", reason=reason)
    await c.serve(StdinReader())


def main():
    import hal
    from sentinel import config

    cfg, errors, source = config.load(CONFIG_PATH)
    del config
    # collect before the heap is exhausted, so large buffers (captures, log reads) still find
    # contiguous room: fragmentation, not total use, is what fails first on a small heap
    if hasattr(gc, "threshold"):
        gc.threshold(16384)
    _drop_validator()
    board = hal.make_board(cfg)
    unstable = count_boot(board.reset_cause())
    try:
        if unstable > SAFE_MODE_BOOTS:
            asyncio.run(safe_mode(board, "%d boots in a row crashed within %d s"
                                  % (unstable - 1, STABLE_UPTIME_MS // 1000), source, errors))
        else:
            s = Sentinel(board, cfg, source, errors)
            try:
                asyncio.run(s.run())
            except asyncio.CancelledError:
                if not s.reboot:
                    raise
            if s.reboot:
                board.reset()
    except KeyboardInterrupt:
        park = getattr(board, "watchdog_park", None)
        if park:
            park()
        raise
    finally:
        asyncio.new_event_loop()
