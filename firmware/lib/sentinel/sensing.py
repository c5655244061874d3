"""The sensing tasks: the sampler (HAL ADC blocks into the mains monitor and the capture ring)
with its hooks, and the contact poller of a dry-contact UPS.

Owns what the hooks keep: the recent mains events shown in status, whether the monitor has read
its first block, and the AdcSource (its overrun count and ring span are reported). Hooks log
mains changes, events, captures and gaps in the samples (an `adc_gap` record at most every
GAP_RECORD_MS, with the gaps since the last); a failing hook is counted, never allowed to stop
sensing.
"""
import asyncio
import time

from sentinel import sampler

GAP_RECORD_MS = 10000


# a phase alarm is raised (and cleared) once it has held this long: when the whole mains goes
# or comes back, the phases cross their thresholds a few ms apart, which is no alarm
PHASE_HOLD_MS = 200


class Sensing:
    # several mains channels: the phase alarm raised (PhaseSet.alarm() held PHASE_HOLD_MS),
    # and the one seen at the last change with its time (class defaults: a single-channel
    # site's instance never gains them)
    phase_alarm = ""
    _al_seen = ""
    _al_at = 0

    def __init__(self, rt, monitor, capture, contacts=None):
        self.rt = rt
        self.monitor = monitor
        self.capture = capture
        self.contacts = contacts   # ContactMonitor or None
        self.adc = None            # the AdcSource, once the sampler runs
        self.events = []           # recent mains events for status (bounded)
        self.counts = {}           # events since boot by kind, and "lost" (fast loss triggers)
        self.seen = False          # first block read (NUT answers WAIT before)
        self._gap_at = -10 ** 9
        self._gaps_logged = 0
        self._gap_samples_logged = 0

    def ring_ms(self):
        """How long the ADC ring holds samples: a loop stall longer than this loses blocks."""
        a = self.adc
        return 0 if a is None else len(a.ring) // getattr(a, "nch", 1) * 1000 // a.rate

    # -- sampler hooks ---------------------------------------------------------------------------
    def on_mains_change(self, mon):
        names = getattr(mon, "names", None)
        if names is None:
            self.rt.console.event("mains", lost=mon.lost, good=mon.good, v=round(mon.urms, 1))
        else:
            # several channels: which ones are lost or good (the aggregate: all lost / any good)
            lost = [names[c] for c in range(mon.nch) if mon.lost_mask >> c & 1]
            good = [names[c] for c in range(mon.nch) if mon.good_mask >> c & 1]
            self.rt.console.event("mains", lost=mon.lost, good=mon.good, v=round(mon.urms, 1),
                                  lost_channels=lost, good_channels=good)
            # set on the first change: a single-channel site's instance gains no attribute
            if lost != getattr(self, "_lost_chans", None):
                self._lost_chans = lost
                self.rt.log("mains_channels", {"lost": lost, "good": good})
            al = mon.alarm()
            if al != self._al_seen:
                self._al_seen = al
                self._al_at = self.rt.now()
        # (several channels: with every channel lost no channel's flags can change, so this
        # runs once per loss as with one channel)
        if mon.lost:
            self._count("lost")
            self.rt.log("mains_lost", {"v": round(mon.urms, 1)}, critical=True)

    def phase_step(self, now):
        """A phase missing or out of tolerance for PHASE_HOLD_MS is raised (NUT ALARM, the
        console, the log); cleared the same way. Called by the control loop."""
        al = self._al_seen
        if al != self.phase_alarm and now - self._al_at >= PHASE_HOLD_MS:
            self.phase_alarm = al
            if al:
                self.rt.log("phase_alarm", {"alarm": al}, critical=True)
            else:
                self.rt.log("phase_ok", {})

    def _count(self, kind):
        n = self.counts.get(kind, 0)
        if n < 0x3FFFFFFF:  # a small int however long the board runs
            self.counts[kind] = n + 1

    def on_mains_event(self, ev):
        out = {"type": ev["kind"], "start_ms": ev["start_ms"], "duration_ms": ev["duration_ms"],
               "pct": ev["pct"], "v": ev.get("residual_v", ev.get("peak_v")),
               "trig": ev["trig"]}
        if "phases" in ev:         # several channels: those the event was seen on
            out["phases"] = ev["phases"]
        ev = out
        self._count(ev["type"])
        self.events.append(ev)
        if len(self.events) > 8:
            self.events.pop(0)
        self.rt.log("mains_event", ev)
        self.rt.console.event("event", **ev)

    def on_capture(self, meta, data):
        m = self.rt.cfg["mains"]
        meta["nominal_v"] = m["nominal_v"]
        meta["nominal_hz"] = m["nominal_hz"]
        meta["sample_rate"] = meta["rate"]
        # the capture starts pre_ms before the disturbance it belongs to
        meta["start_epoch"] = self.rt.board.time() - (self.monitor.samples - meta["t0"]) \
            // meta["rate"]
        ev = self.events[-1] if self.events else None
        meta["event"] = ev["type"] if ev and ev.get("trig") == meta["trig"] else "disturbance"
        # written straight from the capture slot: no 4 KB copy on the heap
        self.rt.journal.save_capture(meta, data, now_ms=self.rt.now())

    def on_block(self, mon):
        self.seen = True

    def on_gap(self, n):
        # a loaded host or a long loop stall can make many: one record per GAP_RECORD_MS
        # carries how many gaps and samples were lost since the last one
        mon = self.monitor
        now = self.rt.now()
        if now - self._gap_at >= GAP_RECORD_MS:
            self._gap_at = now
            self.rt.log("adc_gap", {"gaps": mon.gaps - self._gaps_logged,
                                    "samples": mon.gap_samples - self._gap_samples_logged,
                                    "last": n})
            self._gaps_logged = mon.gaps
            self._gap_samples_logged = mon.gap_samples

    # -- tasks -----------------------------------------------------------------------------------
    async def sampler_task(self):
        rt = self.rt
        m = rt.cfg["mains"]
        if m["channels"]:
            try:
                self.adc = rt.board.adc(m["sample_rate"], m["block_len"],
                                        [c["pin"] for c in m["channels"]])
            except ValueError as e:
                # a pin this board cannot sample (validation on the device refuses it first;
                # the virtual board's config check allows any supported port's pins)
                rt.log("config_error", {"error": str(e)}, critical=True)
                raise
        else:
            self.adc = rt.board.adc(m["sample_rate"], m["block_len"])
        await sampler.run(self.adc, self.monitor, self.capture, on_block=self.on_block,
                          progress=lambda: rt.progress("sampler"),
                          on_change=rt.guard("mains", self.on_mains_change),
                          on_event=rt.guard("event", self.on_mains_event),
                          on_capture=rt.guard("capture", self.on_capture),
                          on_gap=rt.guard("gap", self.on_gap))

    async def contacts_task(self, mon=None, key="ups"):
        """Debounce the contact lines into `mon` (the first UPS's ContactMonitor, or the one
        a feed's contact UPS reads when the first UPS is not on contacts), every 10 ms."""
        rt = self.rt
        c = rt.board.contacts()
        if mon is None:
            mon = self.contacts
        if mon is None:
            return
        chatter = 0
        last_report = -10 ** 9
        while True:
            if mon.update(c.read(), time.ticks_ms()):
                rt.log("contacts", {"status": mon.statuses()})
            total = sum(mon.deb.chatter)
            if total != chatter and rt.now() - last_report > 10000:
                # an anomaly worth a record, at most every 10 s: loose wire, missing pull-up
                rt.log("contact_chatter", {"edges": total - chatter,
                                           "lines": [x[0] for x in mon.line_states() if x[3]]})
                chatter = total
                last_report = rt.now()
            rt.progress(key)
            await asyncio.sleep_ms(10)
