"""The composition root: reads the config, builds the board's HAL and every part of the
sentinel, resumes the plan saved in state.json, and runs the tasks. main.py calls main(); the
virtual board runs exactly this.

    sampler ──> MainsMonitor ─┐                            (sensing)
    UPS link / contacts ──────┼─> control loop: StateMachine.update ─> Sequencer ─> NutServer
    battery model ────────────┘        │   └─> Snapshot ─> NutView (what NUT clients see)
                                       └─> journal, console events, persisted plan
    console ops (ops, ops_rare)   supervisor, reporter, loop lag, NUT starter (tasks)
    web (status page, /metrics; only when http.enabled) started like NUT

Also owns boot-loop protection (too many short-lived boots: safe mode, console only).
"""
import asyncio
import gc
import time

from sentinel import console
from sentinel.nutview import NutView, Snapshot, ups_list
from sentinel.ops import Ops
from sentinel import runtime as R
from sentinel import tasks as T
from sentinel.version import PROTOCOL, VERSION

FIRST_READING_MS = 3000  # NUT waits at most this long at boot for the first mains reading


def _policy_feeds(cfg, chan_feeds, names):
    """The feed policy's feed per channel: each channel's feed, and on a site where a server
    lists a phase (L1..L3 sensing no feed: "" in chan_feeds) each such phase as a feed of its
    own."""
    ph = [n for cf, n in zip(chan_feeds, names) if not cf]
    if ph:
        for t in cfg["tiers"]:
            for h in t["hosts"]:
                for f in h.get("feeds") or ():
                    if f in ph:
                        return [cf or n for cf, n in zip(chan_feeds, names)]
    return chan_feeds


def _site_feeds(chan_feeds):
    """Two or more feeds are sensed: the site model runs, so that a lost feed raises its
    alarm and shows in the status, whether or not any server lists its feeds."""
    names = []
    for f in chan_feeds:
        if f and f not in names:
            names.append(f)
    return len(names) >= 2


def _feeds_declared(cfg):
    """Some server lists its feeds, or each feed has its UPS: the site's power-on then waits
    for every feed a server needs. A site that declares none powers on as before (a server
    is not held off for a feed nobody said it needs)."""
    if cfg["ups"]["feeds"]:
        return True
    for t in cfg["tiers"]:
        for h in t["hosts"]:
            if h.get("feeds"):
                return True
    return False


class Sentinel:
    """Every part, wired. board: the HAL Board; cfg: the validated config; cfg_source,
    cfg_errors: where it came from and what was wrong with it; write: the console writer;
    root: the filesystem root holding config, state, boot counter and journal."""

    # one UPS per feed (ups.feeds): the other feeds' (key, UpsLink), run as tasks of their own,
    # and the feedups.FeedUps. Class defaults: single-UPS sites add nothing to the instance
    more_links = ()  # type: tuple | list  # set by feedwire.feed_ups
    feed_ups = None
    more_contacts = None   # the ContactMonitor debouncing a feed's contact UPS's lines, when
                           # the first UPS is not read over contacts (then it has its own task)
    board_errors = ()      # config the validator let through that this board cannot run

    def __init__(self, board, cfg, cfg_source="defaults", cfg_errors=(), write=R.out, root="/"):
        # imported here, after main() has dropped the config validator: the boot's peak heap
        # holds the validator or these modules, never both (saves device heap)
        from sentinel.battery import BatteryModel
        from sentinel.capture import Capture
        from sentinel.control import Control
        from sentinel.coverage import Coverage
        from sentinel.journal import Journal
        from sentinel.mains import MainsMonitor
        from sentinel.nut.server import NutServer
        from sentinel.sensing import Sensing
        from sentinel.sequencer import ContactLoadOff, Sequencer
        from sentinel.statemachine import StateMachine

        rt = R.Runtime(board, cfg, Journal(root, epoch_fn=board.time), write, root)
        self.rt = rt
        self.reboot = False
        self.main_task = None
        self.wol = None    # the wol.Sender, once a power-on has woken a host
        m = cfg["mains"]
        ups = cfg["ups"]
        link = None
        contacts = None
        if ups["link"] == "q1":
            # only the link this UPS uses is loaded: saves device heap
            from sentinel.upslink import UpsLink
            link = UpsLink(board.uart(ups["baud"]), time.ticks_ms,
                           progress=lambda: rt.progress("ups"), poll_ms=ups["poll_ms"],
                           link_lost_s=ups["link_lost_s"])
        elif ups["link"] == "contacts":
            from sentinel.contacts import ContactMonitor
            lines = board.contacts().lines
            rules = self._board_rules(ups["contacts"], lines, "ups.contacts")
            if rules is not None:
                contacts = ContactMonitor(rules, lines, ups["debounce_ms"])
        self.link = link
        chans = m["channels"]
        chan_feeds = pol_feeds = ()
        if len(chans) > 1:
            # only multi-channel sites load the polyphase module (device heap)
            from sentinel.phases import PhaseSet
            mon = PhaseSet(m)
            chan_feeds = mon.feeds
            pol_feeds = _policy_feeds(cfg, chan_feeds, mon.names)
            cap = Capture(m, channels=mon.names, vpcs=[x.vpc for x in mon.mons], lazy=True)
        else:
            if chans and chans[0]["volts_per_count"] is not None:
                m = dict(m)     # one channel listed, with its own calibration
                m["volts_per_count"] = chans[0]["volts_per_count"]
            mon = MainsMonitor(m)
            # the second slot's 4 KB only while a capture is in flight (the control step)
            cap = Capture(m, lazy=True)
        self.sensing = Sensing(rt, mon, cap, contacts)
        battery = BatteryModel(runtime_full_s=ups["battery_runtime_s"])

        now = rt.now()
        saved = R.read_json(rt.files["state"])
        if not isinstance(saved, dict):
            saved = None   # damaged (valid JSON, not an object): a fresh plan, not a crash
        # Time spent rebooting counts towards the plan's timers (grace, max_wait) when the RTC
        # can tell it: a sentinel that reboots on battery must not restart its grace period.
        down_ms = 0
        if saved and saved.get("at", 0) > R.EPOCH_VALID and board.time() > R.EPOCH_VALID:
            down_ms = max(0, min(board.time() - saved["at"], 86400)) * 1000
        if saved and saved.get("sm"):
            sm = StateMachine.from_dict(cfg, saved["sm"], now, elapsed_ms=down_ms)
        else:
            sm = StateMachine(cfg, now)
        self.sm = sm

        names = ups_list(cfg)
        snap = Snapshot(names)
        pair = cfg.get("pair")
        pair_on = bool(pair and pair["enabled"])
        self.view = NutView(board.name, names, snap, rt.now, cfg["nut"]["stale_s"] * 1000,
                            (cfg["mains"]["nominal_v"], cfg["mains"]["nominal_hz"]),
                            pair=pair_on)
        nut = NutServer(cfg["nut"], self.view, rt.now, on_tls=lambda addr, result: rt.log(
            "nut_tls", {"addr": addr, "result": result}))
        self.nut = nut
        self.view.use_fsd(nut.fsd)
        if nut.tls_error is not None:  # a certificate that cannot be used: plain NUT only
            rt.log("nut_tls", {"error": nut.tls_error}, critical=True)
        if link is not None:
            actions = link
        elif ups["shutdown_output"] is not None:
            actions = ContactLoadOff(lambda: self._pulse_output(ups["shutdown_output"]))
        else:
            actions = None
        first_ups = actions
        if ups["feeds"]:
            # the wiring is imported for boot and dropped after it (device heap)
            from sentinel import feedwire
            actions = self.feed_ups = feedwire.feed_ups(self, ups, actions, chan_feeds)
            R.drop_modules(("feedwire",))
        seq = Sequencer(cfg, nut, actions, rt.journal_fn, rt.now, wake=self._wake,
                        net_state=board.network_state)
        if self.feed_ups is not None:
            self.feed_ups.plan = lambda: seq.plan_id
        if saved and saved.get("seq"):
            seq.restore(saved["seq"], now, elapsed_ms=down_ms)
        cov = Coverage(cfg, nut, rt.journal_fn, now)
        self.control = Control(rt, self.sensing, link, battery, sm, seq, cov, snap)
        if self.feed_ups is not None:
            self.control.attach_feed_ups(self.feed_ups)
        acts = nut.actions
        if self.feed_ups is not None and acts is not None:
            # NUT's instant commands (shutdown.return, battery tests) act on the first UPS, the
            # one the tiers' variables come from; the load-off alone goes to every feed's
            acts.ups = first_ups
        feeds = None
        if _site_feeds(pol_feeds):
            # the site model loads only when two feeds are sensed (device heap: single-feed
            # and three-phase sites never import it)
            from sentinel.feeds import FeedPolicy
            feeds = FeedPolicy(cfg, pol_feeds, nut, rt.log, wake=self._wake, checks=seq.checks,
                               spawn=asyncio.create_task)
            self.control.attach_feeds(feeds)
            if _feeds_declared(cfg):
                seq.attach_feeds(feeds)   # its power-on waits for every feed a server needs
            if saved and saved.get("feeds") is not None:
                # a feed lost before the reboot keeps its grace; servers told FSD are told again
                feeds.restore(saved["feeds"], now, elapsed_ms=down_ms)
        # a power-on reset: if we were in LOAD_OFF, the UPS has cut the load powering us
        self.control.inputs.powered_up = board.reset_cause() == "power_on"
        self.net = T.NutStarter(rt, nut)
        self.lag = T.LoopLag(rt, lambda: self.sensing.ring_ms() // 2)
        self.ops = Ops(rt, self.sensing, link, battery, sm, seq, cov, nut, self.net, self.lag,
                       snap, self.control.inputs.commands, self._reboot_soon, cfg_source,
                       list(cfg_errors) + list(self.board_errors))
        if ups["link"] == "contacts" and contacts is None:
            self.ops.ups_link = "config_error"   # its rules name a line this board lacks
        rt.console.handlers = self.ops
        if feeds is not None:
            self.ops.attach_feeds(feeds)
        if self.feed_ups is not None:
            self.ops.attach_feed_ups(self.feed_ups)
        self.outbox = None
        a = cfg.get("alerts")
        if a and any(a[n]["enabled"] for n in ("syslog", "webhook", "smtp", "mqtt")):
            # imported only when a transport is enabled (device heap: boards without ROMFS
            # hold every imported module's bytecode in RAM)
            from sentinel.alerts.outbox import Outbox
            self.outbox = Outbox(rt.journal, cfg, root, rt.now, rt.log,
                                 progress=lambda: rt.progress("alerts"))
            self.ops.attach_alerts(self.outbox)
        http = cfg.get("http")
        self.web = self._web(http, nut) if http and http["enabled"] else None
        self.pair = None
        if pair_on:
            # the pair package loads only when pair.enabled: saves device heap (boards without
            # ROMFS hold every imported module's bytecode in RAM)
            from sentinel.pair.link import PairLink, gate, new_boot_id, own_view, turn, ups_busy
            from sentinel.sequencer import LOAD_OFF_RETRY_MS
            self.pair = PairLink(cfg, board, rt.now, rt.log, snap, own_view(self.control),
                                 new_boot_id())
            # the sensor's loss counts for the plan only when corroborated (pair/arbiter.py)
            self.control.gate = gate(self.pair, self.control)
            # one load-off per outage: B waits for A's, up to a peer's death plus A's retry;
            # a command already at the UPS is not sent again; without a live peer B waits two
            # of its UPS polls (and a second) for a partitioned A's command to show on its link
            self.control.seq.turn = turn(self.pair, pair["dead_ms"] + LOAD_OFF_RETRY_MS,
                                         ups_busy(self.control), 2 * ups["poll_ms"] + 1000)
            # back mid-plan, the servers its peer already shut down never log in here: they
            # are not taken for a done tier until the clients had time to reconnect
            self.control.seq.booted(rt.now())
            # one plan per outage: the walk catches up with the peer's (pair/agree.py)
            from sentinel.pair.agree import agreement
            self.control.seq.attach_agree(agreement(self.pair))
            self.ops.attach_pair(self.pair)
        self.cfg_source = cfg_source
        self.cfg_errors = list(cfg_errors)

    def _board_rules(self, text, lines, where):
        """A UPS's contact rules over this board's lines, or None when they name a line it
        does not have (the validator allows 0-31 off the real ports: a virtual header has 8):
        a config_error naming `where` (journaled, and in identify's config_errors) and that
        UPS left unread, rather than a board that cannot boot."""
        from sentinel.contacts import ContactRuleError, parse_rules
        try:
            return parse_rules(text, lines)
        except ContactRuleError as err:
            msg = "%s: %s (this board's lines); this UPS is not read" % (where, err)
            if not self.board_errors:
                self.board_errors = []
            self.board_errors.append(msg)
            self.rt.log("config_error", {"error": msg}, critical=True)
            return None

    def _web(self, h, nut):
        """The web server's starter (started like NUT's, once the network is up)."""
        # the web package loads only when http is enabled: saves device heap (boards without
        # ROMFS hold every module's bytecode in RAM)
        from sentinel.web.server import WebServer
        from sentinel.web.site import ROUTES, Site
        rt = self.rt
        # one lock for the web handlers and the alert sends: a page and a send are never on
        # the heap together
        srv = WebServer(Site(self.ops, h), ROUTES, h, nut.limiter, rt.now,
                        None if self.outbox is None else self.outbox.lock)
        st = T.NutStarter(rt, srv, bind=lambda: (h["bind"] or rt.board.nut_bind()[0], h["port"]),
                        name="http", log_network=False)
        self.ops.web = st
        return st

    def _wake(self, mac, addr=None):
        # Wake-on-LAN runs only in a power-on sequence: its module loads with the first wake,
        # not at boot (saves device heap; boards without ROMFS hold every module's code in RAM)
        if self.wol is None:
            from sentinel.wol import Sender
            rec = self.rt.cfg["recovery"]
            self.wol = Sender(rec["wol_broadcast"], rec["wol_port"], log=self.rt.log,
                              net_state=self.rt.board.network_state)
        return self.wol.send(mac, addr)

    async def _pulse_output(self, line):
        # a contact-closure UPS: close its shutdown input for a second
        o = self.rt.board.outputs()
        o.set(line, 1)
        await asyncio.sleep_ms(1000)
        o.set(line, 0)
        return True

    async def _reboot_soon(self):
        # let the reply leave, then end the event loop; main() resets outside it (a reset
        # raised inside a task would only end that task)
        await asyncio.sleep_ms(300)
        self.rt.journal.flush()
        self.reboot = True
        if self.main_task is not None:
            self.main_task.cancel()

    def tasks(self, reader):
        """The coroutines that run for the board's life (the NUT starter aside), and the
        progress limits the supervisor holds them to."""
        limits = dict(T.ALIVE_LIMITS)
        s = self.sensing
        co = [s.sampler_task(), self.rt.console.serve(reader), self.control.run(),
              T.reporter(self.rt, self.ops.status, self.sm), self.lag.run()]
        if self.link is not None:
            co.append(self.link.run())
        elif s.contacts is not None:
            co.append(s.contacts_task())
        else:
            del limits["ups"]
        for key, link in self.more_links:
            co.append(link.run())
            limits[key] = T.ALIVE_LIMITS["ups"]
        if self.more_contacts is not None:
            co.append(s.contacts_task(self.more_contacts, "contacts"))
            limits["contacts"] = T.ALIVE_LIMITS["ups"]
        if self.pair is not None:
            co.append(self.pair.run())
        if self.outbox is not None:
            co.append(self.outbox.run())
        else:
            del limits["alerts"]
        return co, limits

    async def run(self, reader=None):
        rt = self.rt
        board = rt.board
        self.main_task = asyncio.current_task()
        await board.start()
        tasks = [asyncio.create_task(t) for t in board.background()]
        rt.log("boot", {"fw": VERSION, "cause": board.reset_cause(),
                        "config": self.cfg_source}, critical=True)
        for e in self.cfg_errors:
            rt.log("config_error", {"error": e})
        co, limits = self.tasks(reader or R.StdinReader())
        for c in co:
            tasks.append(asyncio.create_task(c))
        # NUT listens once there is a reading to serve: a client that logs in to a sentinel
        # with none yet gets DATA-STALE, and upsmon then counts the UPS lost for a whole
        # DEADTIME (it would miss an FSD). Bounded: a sampler that never starts still gets NUT
        # serving, and DATA-STALE is then the truth.
        t0 = rt.now()
        while self.view.stale() and rt.now() - t0 < FIRST_READING_MS:
            await asyncio.sleep_ms(10)
        # with the network up, NUT listens before the board says hello (as a host expects);
        # without it, sensing, deciding and the console run while the starter keeps looking
        if not await self.net.try_start():
            tasks.append(asyncio.create_task(self.net.run()))
        if self.web is not None and not await self.web.try_start():
            tasks.append(asyncio.create_task(self.web.run()))
        tasks.append(asyncio.create_task(T.supervisor(rt, limits)))
        board.hello({"fw": VERSION, "protocol": PROTOCOL})
        rt.console.event("boot", firmware=VERSION, cause=board.reset_cause(),
                         config=self.cfg_source)
        await asyncio.gather(*tasks)


async def safe_mode(board, reason, cfg_source, errors, write=R.out):
    """Too many crashes soon after boot: no watchdog, no shutdown authority; the console still
    answers so an operator can see why and redeploy or push a config."""
    c = console.ConsoleServer(write, {
        "ping": lambda req: "pong",
        "identify": lambda req: {"firmware": VERSION, "protocol": PROTOCOL,
                                 "board": board.name, "safe_mode": True, "reason": reason,
                                 "reset_cause": board.reset_cause(),
                                 "config_source": cfg_source, "config_errors": errors},
        "status": lambda req: {"safe_mode": True, "reason": reason,
                               "heap": {"free": gc.mem_free(), "alloc": gc.mem_alloc()}},
    })
    await board.start()
    board.hello({"fw": VERSION, "protocol": PROTOCOL, "safe_mode": True})
    c.event("safe_mode", reason=reason)
    await c.serve(R.StdinReader())


def main():
    # the HAL and the validator are imported here, not at the top: tests import this module
    # without a board, and the validator is dropped right after use (saves device heap)
    import hal
    from sentinel import config

    f = R.paths()
    cfg, errors, source = config.load(f["config"])
    del config
    # collect before the heap is exhausted, so large buffers (captures, log reads) still find
    # contiguous room: fragmentation, not total use, is what fails first on a small heap
    if hasattr(gc, "threshold"):
        gc.threshold(16384)
    R.drop_validator()
    gc.collect()
    board = hal.make_board(cfg)
    unstable = R.count_boot(board.reset_cause(), f["boots"])
    try:
        if unstable > R.SAFE_MODE_BOOTS:
            asyncio.run(safe_mode(board, "%d boots in a row crashed within %d s"
                                  % (unstable - 1, R.STABLE_UPTIME_MS // 1000), source, errors))
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
        board.watchdog_park()
        raise
    finally:
        asyncio.new_event_loop()
