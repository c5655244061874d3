# The real boards' HAL (hal/_mcu.py with hal/rp2.py and hal/esp32.py) under the virtual board's
# `machine` stand-in playing each port profile: reset causes, the ADC timer and its counters, the
# UART, the network state and the watchdog while at the REPL.
import asyncio
import os
import sys
import time

from mpunit import TestCase

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_rom = _here + "/../../host/powersentinel/virtual/rom"
if _rom not in sys.path:
    sys.path.append(_rom)

import _vboard  # noqa: E402

_vboard.PROFILE = "rp2"
_vboard.SAMPLE_RATE = 4000
import _vmachine  # noqa: E402

_vmachine.configure("rp2")
sys.modules["machine"] = _vmachine

from hal import Board  # noqa: E402
from hal import _mcu  # noqa: E402
from hal.esp32 import Esp32Board  # noqa: E402
from hal.rp2 import Rp2Board  # noqa: E402

INTENT = "/tmp/psv_test_reset_intent_%d" % time.ticks_us()
SENT = []


def _record(kind, payload=b""):
    SENT.append((kind, bytes(payload)))


def _profile(name, cause="power_on", machine_reset=False, preset=None, wifi="up"):
    _vmachine.configure(name)
    _vboard.RESET_CAUSE = cause
    _vboard.MACHINE_RESET = machine_reset
    _vboard.ISR_PRESET = preset
    _vboard.WIFI = wifi
    _vmachine._send = _record
    _vmachine._hard.clear()
    _vmachine._irq_errors = 0
    if name == "rp2-pico":
        sys.modules.pop("network", None)
    else:
        import _vnetwork
        sys.modules["network"] = _vnetwork


def _board(cls=Rp2Board, cfg=None):
    b = cls(cfg or {"network": {"ssid": "ward"}})
    b.INTENT_PATH = INTENT
    return b


def _samples(values):
    buf = bytearray(2 * len(values))
    for i, v in enumerate(values):
        buf[2 * i] = v & 255
        buf[2 * i + 1] = (v >> 8) & 255
    return buf


def _feed(n, start=0):
    """n samples counting up from `start` through the ADC wire, in wire-sized frames."""
    while n:
        k = min(n, 1024)
        _vmachine._adc_feed(_samples([(start + i) & 0x7FFF for i in range(k)]), k)
        start += k
        n -= k
    return start


def _run(coro):
    return asyncio.run(coro)


class TestInterface(TestCase):
    def test_every_port_board_is_a_board_and_states_the_whole_interface(self):
        for cls in (Rp2Board, Esp32Board):
            self.assertTrue(issubclass(cls, Board))
        for m in ("start", "background", "adc", "contacts", "outputs", "uart", "network_state",
                  "network_up", "ip", "nut_bind", "watchdog_start", "watchdog_feed",
                  "watchdog_park", "time", "set_time", "reset_cause", "unique_id", "reset",
                  "hello", "heartbeat"):
            self.assertTrue(hasattr(Board, m), m)
        with self.assertRaises(NotImplementedError):
            Board().adc(4000, 16)
        self.assertEqual(Board().background(), [])


class TestResetCause(TestCase):
    def tearDown(self):
        try:
            os.remove(INTENT)
        except OSError:
            pass

    def test_rp2_causes_read_with_only_the_constants_rp2_has(self):
        for cause, want in (("power_on", "power_on"), ("wdt", "wdt"), ("crash", "wdt"),
                            ("hard", "hard")):
            _profile("rp2", cause)
            self.assertFalse(hasattr(_vmachine, "HARD_RESET"))
            self.assertEqual(_board().reset_cause(), want)

    def test_esp32_causes(self):
        for cause, want in (("power_on", "power_on"), ("wdt", "wdt"), ("hard", "hard"),
                            ("soft", "soft")):
            _profile("esp32", cause)
            self.assertEqual(_board(Esp32Board).reset_cause(), want)

    def test_a_reset_the_firmware_asked_for_is_not_a_crash(self):
        for cls, prof in ((Rp2Board, "rp2"), (Esp32Board, "esp32")):
            _profile(prof)
            _vboard.INTENT = None
            with self.assertRaises(SystemExit):
                _board(cls).reset()
            _profile(prof, "hard", machine_reset=True)
            b = _board(cls)
            self.assertEqual(b.reset_cause(), "hard", prof)
            self.assertEqual(b.reset_cause(), "hard")  # asked twice, same answer
            # the marker is used once: a later watchdog reset is a watchdog reset
            _profile(prof, "wdt")
            self.assertEqual(_board(cls).reset_cause(), "wdt")

    def test_machine_reset_from_a_developer_without_marker_reads_as_the_port_says(self):
        _profile("rp2", "hard", machine_reset=True)
        self.assertEqual(_board().reset_cause(), "wdt")

    def test_a_stale_marker_does_not_hide_a_power_cut(self):
        with open(INTENT, "w") as f:
            f.write("reset")
        _profile("rp2", "power_on")
        self.assertEqual(_board().reset_cause(), "power_on")


class TestAdc(TestCase):
    def test_rp2_timer_exists_and_esp32_uses_a_hardware_timer(self):
        _profile("rp2")
        a = _board().adc(4000, 16)
        a.start()
        self.assertEqual(a.timer.id, -1)
        with self.assertRaises(ValueError):
            _vmachine.Timer(0)
        _profile("esp32")
        a = _board(Esp32Board).adc(4000, 16)
        a.start()
        self.assertEqual(a.timer.id, 0)

    def test_blocks_in_order_and_the_isr_runs_with_the_heap_locked(self):
        _profile("rp2")
        a = _mcu.AdcSource(_vmachine.ADC(26), 4000, 16, -1, ring_blocks=8)
        a.start()

        async def go():
            got = []
            nxt = 0
            for _ in range(40):
                nxt = _feed(16, nxt)
                got.append(list(await a.read()))
            return got
        got = _run(go())
        self.assertEqual(_vmachine._irq_errors, 0)
        self.assertEqual([g[0] for g in got], [16 * i for i in range(40)])
        self.assertEqual(a.overruns, 0)

    def test_counters_started_just_below_the_small_int_limit_keep_sampling(self):
        top = (1 << 30) - 1
        _profile("rp2", preset={"blocks": top - 5, "rblocks": top - 5})
        a = _mcu.AdcSource(_vmachine.ADC(26), 4000, 16, -1, ring_blocks=8)
        a.start()
        self.assertEqual(a.blocks, top - 5)

        async def go():
            nxt = 0
            firsts = []
            for _ in range(20):
                nxt = _feed(16, nxt)
                firsts.append((await a.read())[0])
            return firsts
        firsts = _run(go())
        self.assertEqual(_vmachine._irq_errors, 0)
        self.assertEqual(firsts, [16 * i for i in range(20)])
        self.assertTrue(a.blocks < 100, a.blocks)  # wrapped, still counting
        for v in (a.w, a.blocks, a.rblocks, a.rslot, a.overruns):
            self.assertTrue(-(1 << 30) <= v < (1 << 30))

    def test_an_isr_counter_past_2_30_fails_as_on_a_32_bit_port(self):
        _profile("rp2")

        class Counter:
            def __init__(self):
                self.n = (1 << 30) - 3

            def isr(self, _t):
                self.n += 1
        c = Counter()
        t = _vmachine.Timer(-1)
        t.init(freq=4000, mode=_vmachine.Timer.PERIODIC, callback=c.isr, hard=True)
        _feed(10)
        self.assertEqual(_vmachine._irq_errors, 1)
        self.assertEqual(c.n, 1 << 30)  # and the timer stopped there, as the port's does

    def test_an_allocating_isr_fails(self):
        _profile("rp2")
        got = {}
        t = _vmachine.Timer(-1)
        t.init(freq=4000, mode=_vmachine.Timer.PERIODIC,
               callback=lambda t: got.update(b=bytearray(8)), hard=True)
        _feed(4)
        self.assertEqual(_vmachine._irq_errors, 1)
        self.assertEqual(got, {})

    def test_a_late_reader_counts_overruns_and_gets_the_oldest_intact_block(self):
        _profile("rp2")
        a = _mcu.AdcSource(_vmachine.ADC(26), 4000, 16, -1, ring_blocks=8)
        a.start()

        async def go():
            _feed(16 * 20)  # 20 blocks while the reader was away; the ring keeps 7 intact
            first = (await a.read())[0]
            return first
        first = _run(go())
        self.assertEqual(a.overruns, 13)
        self.assertEqual(first, 16 * 13)


class TestMultiAdc(TestCase):
    """Several mains channels: one timer, each channel converted in turn in the same IRQ."""

    def setUp(self):
        _vboard.ADC_PINS = [26, 27, 28]
        _vmachine._adc_now = [32768] * 3

    def tearDown(self):
        _vboard.ADC_PINS = [None]
        _vmachine._adc_now = [32768]

    def _feed3(self, ticks, start):
        # tick i: channel c reads 1000 * c + i
        vals = []
        for i in range(start, start + ticks):
            for c in range(3):
                vals.append((1000 * c + i) & 0x7FFF)
        _vmachine._adc_feed(_samples(vals), len(vals))
        return start + ticks

    def test_channels_interleaved_in_order_with_the_heap_locked(self):
        _profile("rp2")
        a = _board().adc(4000, 16, [None, None, None])
        self.assertEqual(a.nch, 3)
        a.start()
        self.assertEqual(a.timer.id, -1)

        async def go():
            got = []
            nxt = 0
            for _ in range(30):
                nxt = self._feed3(16, nxt)
                got.append(list(await a.read()))
            return got
        got = _run(go())
        self.assertEqual(_vmachine._irq_errors, 0)
        for k, blk in enumerate(got):
            self.assertEqual(len(blk), 48)
            for j in range(16):
                for c in range(3):
                    self.assertEqual(blk[3 * j + c], 1000 * c + 16 * k + j)
        self.assertEqual(a.overruns, 0)

    def test_counters_started_just_below_the_small_int_limit_keep_sampling(self):
        top = (1 << 30) - 1
        _profile("esp32", preset={"blocks": top - 5, "rblocks": top - 5})
        _vboard.ADC_PINS = [34, 35, 32]
        a = _board(Esp32Board).adc(4000, 16, [None, None, None])
        a.start()
        self.assertEqual(a.blocks, top - 5)

        async def go():
            nxt = 0
            firsts = []
            for _ in range(20):
                nxt = self._feed3(16, nxt)
                b = await a.read()
                firsts.append((b[0], b[1], b[2]))
            return firsts
        firsts = _run(go())
        self.assertEqual(_vmachine._irq_errors, 0)
        self.assertEqual(firsts, [(16 * i, 1000 + 16 * i, 2000 + 16 * i) for i in range(20)])
        for v in (a.w, a.blocks, a.rblocks, a.rslot, a.overruns):
            self.assertTrue(-(1 << 30) <= v < (1 << 30))

    def test_default_pins_per_port_and_a_pin_the_port_lacks(self):
        from hal.adcpins import channel_pins
        _profile("rp2")
        self.assertEqual(channel_pins(_board(), [None, None, None]), [26, 27, 28])
        b = _board(Rp2Board, {"board": {"adc_pin": 27}})
        self.assertEqual(channel_pins(b, [None, 28]), [27, 28])
        with self.assertRaises(ValueError):
            channel_pins(_board(), [None, 34])
        _profile("esp32")
        self.assertEqual(channel_pins(_board(Esp32Board), [None, None, None]), [34, 35, 32])
        with self.assertRaises(ValueError):
            channel_pins(_board(Esp32Board), [None, 26])   # ADC2: unusable with Wi-Fi
        # one channel listed: the plain source on that pin
        _profile("rp2")
        a = _board().adc(4000, 16, [27])
        self.assertFalse(hasattr(a, "adcs"))


class TestUart(TestCase):
    REPLY = b"(230.0 230.0 230.0 020 50.0 27.3 25.0 00001000\r"

    def _gaps(self, uart, timeout_ms):
        """read_until under a ticker task: (reply, longest gap between ticks in ms)."""
        async def go():
            gaps = [0]
            done = [False]

            async def ticker():
                last = time.ticks_ms()
                while not done[0]:
                    await asyncio.sleep_ms(2)
                    now = time.ticks_ms()
                    gaps[0] = max(gaps[0], time.ticks_diff(now, last))
                    last = now
            task = asyncio.create_task(ticker())
            await asyncio.sleep_ms(5)
            await uart.write(b"Q1\r")
            _vmachine._uart._arrive(self.REPLY)
            r = await uart.read_until(b"\r", timeout_ms)
            done[0] = True
            await task
            return r, gaps[0]
        return _run(go())

    def test_a_q1_reply_at_2400_baud_never_blocks_the_loop(self):
        _profile("rp2")
        u = _board().uart(2400)
        r, gap = self._gaps(u, 1000)
        self.assertEqual(r, self.REPLY)
        # the reply takes 196 ms on the line; the loop kept turning meanwhile
        self.assertTrue(gap < 60, gap)
        self.assertTrue(("U", b"Q1\r") in [(k.decode(), p) for k, p in SENT])

    def test_a_reply_still_arriving_at_the_timeout_is_kept(self):
        _profile("rp2")
        u = _board().uart(2400)
        r, _ = self._gaps(u, 120)
        self.assertEqual(r, self.REPLY)

    def test_silence_times_out(self):
        _profile("rp2")
        u = _board().uart(2400)

        async def go():
            return await u.read_until(b"\r", 50)
        self.assertEqual(_run(go()), None)


class TestNetwork(TestCase):
    def test_no_network_module_reads_absent_and_start_does_not_raise(self):
        _profile("rp2-pico")
        b = _board()
        _run(b.start())
        self.assertEqual(b.network_state(), "absent")
        self.assertFalse(b.network_up())
        self.assertEqual(b.ip(), "0.0.0.0")

    def test_wifi_down_at_boot_reads_down_then_up(self):
        _profile("rp2", wifi="down")
        b = _board()
        _run(b.start())
        self.assertEqual(b.network_state(), "down")
        _vboard.WIFI = "up"
        self.assertEqual(b.network_state(), "up")
        self.assertEqual(b.ip(), "127.0.0.1")


class TestWatchdog(TestCase):
    def test_rp2_watchdog_cannot_be_stopped_and_park_keeps_feeding_it(self):
        _profile("rp2")
        self.assertFalse(hasattr(_vmachine.WDT, "deinit"))
        b = _board()
        b.watchdog_start(8000)
        del SENT[:]
        b.watchdog_park()
        # the soft timer feeds every 2 s while the main program waits (here: at the "REPL")
        deadline = time.ticks_add(time.ticks_ms(), 5000)
        while time.ticks_diff(deadline, time.ticks_ms()) > 0 and (b"W", b"") not in SENT:
            time.sleep_ms(20)
        self.assertTrue((b"W", b"") in SENT, SENT)
        # never a "stop" (a timeout of 0) on the wire
        self.assertFalse(any(k == b"W" and p == bytes(4) for k, p in SENT))
        b._park.deinit()


class TestNetworkTrouble(TestCase):
    def test_a_radio_that_fails_to_start_reads_down_and_start_does_not_raise(self):
        _profile("rp2")
        import _vnetwork

        def broken(self, on=None):
            raise RuntimeError("Wifi Unknown Error 0x0101")
        saved = _vnetwork.WLAN.active
        _vnetwork.WLAN.active = broken
        try:
            b = _board()
            _run(b.start())
            self.assertEqual(b.network_state(), "down")
        finally:
            _vnetwork.WLAN.active = saved
