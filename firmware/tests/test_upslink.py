import asyncio

from mpunit import TestCase

from sentinel import config, q1, q1fmt
from sentinel.upslink import LOST, OK, INIT, UpsLink

Q1_OL = b"(230.0 230.0 230.0 020 50.0 27.3 25.0 00001000\r"
Q1_OB = b"(000.0 000.0 229.0 021 50.0 24.0 25.0 10001000\r"
Q1_OB_LB = b"(000.0 000.0 228.0 021 50.0 20.8 25.0 11001000\r"
F_OK = b"#230.0 004 024.0 50.0\r"
I_OK = q1fmt.format_i("ACME", "Line1000", "1.02")


class Clock:
    def __init__(self, t=1000):
        self.t = t

    def now(self):
        return self.t

    async def sleep_ms(self, ms):
        # Fake time: advance instantly, but still yield like a real sleep.
        self.t += ms
        await asyncio.sleep(0)


class FakeUart:
    """Scripted UPS. responder(cmd) -> reply bytes or None (timeout). Each read costs `latency`
    ms on the fake clock (the full timeout when there is no reply) and yields to other tasks, so
    unserialised callers would interleave."""

    def __init__(self, clock, responder, latency=100):
        self.clock = clock
        self.responder = responder
        self.latency = latency
        self.writes = []
        self.times = []  # clock at each write
        self.pending = None
        self.outstanding = False
        self.flushes = 0
        self.overlap = 0

    def flush_input(self):
        self.flushes += 1

    async def write(self, b):
        if self.outstanding:
            self.overlap += 1
        self.outstanding = True
        self.writes.append(bytes(b))
        self.times.append(self.clock.t)
        self.pending = self.responder(bytes(b))
        await asyncio.sleep(0)

    async def read_until(self, term, timeout_ms):
        await asyncio.sleep(0)
        r = self.pending
        self.pending = None
        self.outstanding = False
        if isinstance(r, Exception):
            raise r
        self.clock.t += self.latency if r is not None else timeout_ms
        return r


def ups(q1_reply=Q1_OL, f=F_OK, i=I_OK):
    state = {"q1": q1_reply, "f": f, "i": i}

    def respond(cmd):
        if cmd == b"Q1\r":
            return state["q1"]
        if cmd == b"F\r":
            return state["f"]
        if cmd == b"I\r":
            return state["i"]
        return None
    return state, respond


def run(coro):
    return asyncio.run(coro)


UPS = config.defaults()["ups"]


def make(responder, **kw):
    """A link over a fake UART, configured as the validated ups section's defaults and kw."""
    clock = Clock()
    uart = FakeUart(clock, responder)
    ticks = []
    args = {"poll_ms": UPS["poll_ms"], "link_lost_s": UPS["link_lost_s"]}
    args.update(kw)
    link = UpsLink(uart, clock.now, progress=lambda: ticks.append(clock.t), sleep_ms=clock.sleep_ms,
                   **args)
    return clock, uart, link, ticks


async def polls(link, n):
    for _ in range(n):
        await link.poll_once()


class TestPolling(TestCase):
    def test_first_poll_reads_q1_f_i(self):
        _, respond = ups()
        clock, uart, link, ticks = make(respond)
        self.assertEqual(link.state, INIT)
        run(link.poll_once())
        self.assertEqual(uart.writes, [b"Q1\r", b"F\r", b"I\r"])
        self.assertEqual(uart.flushes, 3)
        self.assertEqual(link.state, OK)
        self.assertTrue(link.link_ok)
        self.assertEqual(link.status, ("OL",))
        self.assertEqual(link.input_v, 230.0)
        self.assertEqual(link.input_hz, 50.0)
        self.assertEqual(link.load, 20)
        self.assertEqual(link.battery_v, 27.3)
        self.assertEqual(link.rating.battery_v, 24.0)
        self.assertEqual(link.info.model, "Line1000")
        self.assertEqual(link.charge, 100)
        self.assertFalse(link.on_battery)
        self.assertEqual(len(ticks), 1)
        v = link.nut_vars()
        self.assertEqual(v["ups.status"], "OL")
        self.assertEqual(v["device.mfr"], "ACME")
        self.assertEqual(v["battery.voltage.nominal"], 24.0)
        self.assertEqual(v["battery.charge"], 100)
        # later polls ask Q1 only
        run(polls(link, 2))
        self.assertEqual(uart.writes[3:], [b"Q1\r", b"Q1\r"])

    def test_status_follows_ups(self):
        st, respond = ups()
        clock, uart, link, _ = make(respond)
        run(link.poll_once())
        st["q1"] = Q1_OB
        run(link.poll_once())
        self.assertEqual(link.status, ("OB",))
        self.assertTrue(link.on_battery)
        st["q1"] = Q1_OB_LB
        run(link.poll_once())
        self.assertEqual(link.status, ("OB", "LB"))
        self.assertEqual(link.charge, 0)

    def test_garbage_and_timeouts_counted_then_link_lost(self):
        st, respond = ups()
        clock, uart, link, ticks = make(respond, link_lost_s=10, reply_timeout_ms=1000)
        run(link.poll_once())
        t_ok = link.last_ok_ms
        bad = [b"\xff\xfe\r", None, b"(230.0 230\r", b"Q1\r", None, b"(NAK\r"]
        k = 0
        # each bad poll: 1 s timeout or 0.1 s latency, plus 2 s between polls
        while link.state == OK:
            st["q1"] = bad[k % len(bad)]
            run(link.poll_once())
            clock.t += 2000
            k += 1
            self.assertLess(k, 20)
        self.assertEqual(link.state, LOST)
        self.assertGreaterEqual(clock.t - t_ok, 10000)
        self.assertLess(clock.t - t_ok, 10000 + 3100)
        self.assertEqual(link.losses, 1)
        self.assertEqual(link.status, ())
        self.assertIsNone(link.input_v)
        self.assertIsNone(link.on_battery)
        self.assertGreater(link.timeouts, 0)
        self.assertGreater(link.garbage, 0)
        self.assertEqual(link.timeouts + link.garbage, k)
        self.assertEqual(link.last_ok_ms, t_ok)
        self.assertEqual(len(ticks), k + 1)  # progress on every cycle, good or bad

    def test_one_bad_reply_does_not_drop_link(self):
        st, respond = ups()
        clock, uart, link, _ = make(respond)
        run(link.poll_once())
        st["q1"] = b"(garbage\r"
        run(link.poll_once())
        self.assertEqual(link.state, OK)
        self.assertEqual(link.garbage, 1)
        self.assertEqual(link.last_error, "short")

    def test_never_answers_goes_lost_from_init(self):
        clock, uart, link, _ = make(lambda c: None, link_lost_s=5, reply_timeout_ms=1000)
        for _ in range(4):
            run(link.poll_once())
        self.assertEqual(link.state, INIT)  # 3 s since the first poll
        self.assertFalse(link.link_known)   # not answered yet is not lost
        for _ in range(3):
            run(link.poll_once())
        self.assertEqual(link.state, LOST)
        self.assertTrue(link.link_known)
        self.assertEqual(uart.writes, [b"Q1\r"] * 7)  # no F / I without a live UPS
        self.assertIsNone(link.charge)

    def test_recovery_asks_f_and_i_again(self):
        st, respond = ups()
        clock, uart, link, _ = make(respond, link_lost_s=2)
        run(link.poll_once())
        st["q1"] = None
        for _ in range(3):
            run(link.poll_once())
        self.assertEqual(link.state, LOST)
        st["q1"] = Q1_OL
        n = len(uart.writes)
        run(link.poll_once())
        self.assertEqual(link.state, OK)
        self.assertEqual(link.recoveries, 1)
        self.assertEqual(uart.writes[n:], [b"Q1\r", b"F\r", b"I\r"])

    def test_f_nak_stops_asking_and_f_timeout_retries(self):
        st, respond = ups(f=b"(NAK\r", i=None)
        clock, uart, link, _ = make(respond, battery_nominal_v=12.0)
        run(polls(link, 5))
        self.assertEqual(uart.writes.count(b"F\r"), 1)
        self.assertEqual(uart.writes.count(b"I\r"), 3)  # timeouts: retried a few times only
        self.assertIsNone(link.rating)
        self.assertEqual(link.state, OK)
        self.assertEqual(link.nominal_battery_v, 12.0)

    def test_uart_error_is_counted_not_raised(self):
        clock, uart, link, _ = make(lambda c: OSError(5))
        run(link.poll_once())
        self.assertEqual(link.uart_errors, 1)
        self.assertEqual(link.timeouts, 1)


class TestRunAndCommands(TestCase):
    def test_run_paces_polls(self):
        _, respond = ups()
        clock, uart, link, ticks = make(respond, poll_ms=2000)

        async def main():
            task = asyncio.create_task(link.run())
            while len(ticks) < 5:
                await asyncio.sleep(0)
            link.stop()
            await task
        run(main())
        # Q1 requests start every poll_ms, whatever the cycle itself took (the first one also
        # asked F and I).
        starts = [uart.times[k] for k in range(len(uart.writes)) if uart.writes[k] == b"Q1\r"]
        self.assertEqual(len(starts), 5)
        self.assertEqual([starts[k + 1] - starts[k] for k in range(4)], [2000] * 4)
        self.assertEqual(ticks[0] - starts[0], 300)

    def test_shutdown_serialised_with_polling(self):
        st, respond0 = ups()

        def respond(cmd):
            if cmd.startswith(b"S") or cmd == b"C\r":
                return b"ACK\r"
            return respond0(cmd)
        clock, uart, link, ticks = make(respond)
        results = []

        async def main():
            task = asyncio.create_task(link.run())
            await asyncio.sleep(0)
            results.append(await link.shutdown_restore(0.5, 2))
            results.append(await link.cancel_shutdown())
            results.append(await link.shutdown(1))
            link.stop()
            await task
        run(main())
        self.assertEqual(uart.overlap, 0)
        self.assertIn(b"S.5R0002\r", uart.writes)
        self.assertIn(b"C\r", uart.writes)
        self.assertIn(b"S01\r", uart.writes)
        self.assertEqual(results, [True, True, True])
        self.assertEqual(link.commands, 3)
        self.assertEqual(link.last_command_reply, b"ACK")

    def test_without_lock_the_fake_would_overlap(self):
        # Guard for the test above: the fake really detects interleaving.
        clock = Clock()
        uart = FakeUart(clock, lambda c: b"ACK\r")

        async def req(c):
            await uart.write(c)
            return await uart.read_until(b"\r", 100)

        async def main():
            await asyncio.gather(req(b"Q1\r"), req(b"C\r"))
        run(main())
        self.assertGreater(uart.overlap, 0)

    def test_command_results(self):
        st, respond0 = ups()
        replies = {b"C\r": b"(NAK\r"}
        clock, uart, link, _ = make(lambda c: replies.get(c, respond0(c)))
        self.assertFalse(run(link.shutdown_restore(1, 0)))  # link not up yet
        run(link.poll_once())
        self.assertTrue(run(link.shutdown_restore(1, 0)))  # no reply is fine
        self.assertIsNone(link.last_command_reply)
        self.assertFalse(run(link.cancel_shutdown()))  # NAK
        self.assertRaises(ValueError, lambda: run(link.shutdown_restore(1.5, 0)))
        self.assertEqual(uart.writes.count(b"S01R0000\r"), 2)

    def test_send_an_instant_command(self):
        st, respond0 = ups()
        replies = {b"Q\r": b"(NAK\r"}
        clock, uart, link, _ = make(lambda c: replies.get(c, respond0(c)))
        self.assertFalse(run(link.send(q1.CMD_TEST)))  # link not up yet
        run(link.poll_once())
        self.assertTrue(run(link.send(q1.CMD_LOAD_OFF)))
        self.assertFalse(run(link.send(q1.CMD_BEEPER)))  # NAK
        self.assertIn(b"S00R0000\r", uart.writes)
        self.assertEqual(link.last_command, b"Q\r")
