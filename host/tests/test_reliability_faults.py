"""Sampler stall, UPS link stall and signal faults on the virtual board.

Each test drives the real firmware through the supervisor's wires and checks what a server's
upsmon would see over NUT, what the board logged, and that it never started a shutdown.
"""
import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))

import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]
from reliability_common import virtual  # noqa: E402  # pyright: ignore[reportMissingImports]

DEADTIME_S = 15  # upsmon's default DEADTIME: a sentinel silent longer than this is "dead"


def _log_since(lk, seq):
    recs, _, _ = rc.read_log(lk, seq)
    return recs


def _last_seq(lk):
    return lk.request("log_read", from_seq=0, max=1)["last"] or 0


def _causes(recs):
    return [(r["type"], (r["data"] or {}).get("cause")) for r in recs]


def _assert_online(lk, nut_board):
    st = lk.request("status")
    assert st["state"]["name"] == "ONLINE", st["state"]
    assert all(not t.get("fsd") for t in st["tiers"]), st["tiers"]
    reply = nut_board.nut_get("ups.status")
    assert reply.startswith("VAR ") and "FSD" not in reply and "OB" not in reply, reply


def test_sampler_stall_goes_stale_then_watchdog_reset_then_serving(tmp_path):
    stale_s = 3
    b = rc.Board(str(tmp_path / "b"), rc.make_config(**{"nut.stale_s": stale_s}))
    try:
        b.wait_serving(10)
        boots0 = b.boots()
        t0 = time.monotonic()
        b.wires({"adc": "stall"})
        t_stale = None
        t_reset = None
        replies = []
        while time.monotonic() - t0 < 30:
            r = b.nut_get("ups.status", timeout=1.0)
            replies.append((round(time.monotonic() - t0, 2), r))
            if t_stale is None and r == "ERR DATA-STALE":
                t_stale = time.monotonic() - t0
            if b.boots() > boots0:
                t_reset = time.monotonic() - t0
                break
            time.sleep(0.1)
        assert t_stale is not None, replies[-5:]
        # the sampler's progress stamp is older than stale_s: at most one control period later
        assert stale_s - 0.3 <= t_stale <= stale_s + 1.0, (t_stale, replies[:5])
        assert t_reset is not None, "the watchdog did not reset a board whose sampler hung"
        meta = b.info()
        assert meta["reset_cause"] == "wdt"
        # the fault clears (e.g. the ADC DMA recovers after the reset): the board must serve
        # NUT again well within upsmon's DEADTIME
        b.wires({"adc": "run"})
        t_boot = time.monotonic()
        serving = b.wait_serving(DEADTIME_S)
        print("sampler stall: DATA-STALE after %.2f s, watchdog reset after %.2f s, serving "
              "%.2f s after the reset" % (t_stale, t_reset, time.monotonic() - t_boot))
        assert serving < DEADTIME_S
        with rc.link(b) as lk:
            recs = _log_since(lk, 0)
            stuck = [r for r in recs if r["type"] == "stuck"]
            assert stuck and "sampler" in stuck[-1]["data"]["tasks"], _causes(recs)[-8:]
            assert recs[-1]["type"] == "boot" or any(
                r["type"] == "boot" and r["data"]["cause"] == "wdt" for r in recs)
    finally:
        b.stop()


@pytest.fixture(scope="module")
def q1board(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("q1") / "b")
    b = rc.Board(d, rc.make_config(**{"ups.link": "q1", "ups.poll_ms": 300,
                                      "ups.link_lost_s": 2, "policy.grace_s": 30}))
    try:
        b.wait_serving(10)
        with rc.link(b) as lk:
            virtual.wait_for(lambda: lk.request("status")["ups"]["link"] == "ok", 10,
                             "the Q1 link to come up")
        yield b
    finally:
        b.stop()


def test_ups_link_lost_on_line_is_logged_and_never_shuts_down(q1board):
    b = q1board
    boots = b.boots()
    with rc.link(b) as lk:
        s0 = _last_seq(lk)
        b.wires({"ups.link": "lost"})
        try:
            virtual.wait_for(lambda: lk.request("status")["ups"]["link"] == "lost", 8,
                             "the link to be declared lost")
            time.sleep(2.0)
            _assert_online(lk, b)
        finally:
            b.wires({"ups.link": "ok"})
        virtual.wait_for(lambda: lk.request("status")["ups"]["link"] == "ok", 8, "link back")
        # the link's status turns ok first; the state machine journals the return at its next
        # control step (100 ms, more on a loaded host): wait for the record, do not race it
        recs = virtual.wait_for(
            lambda: (lambda r: r if ("policy", "ups_link_restored") in _causes(r) else None)(
                _log_since(lk, s0 + 1)), 8, "the ups_link_restored record", interval=0.2)
        causes = _causes(recs)
        assert ("policy", "ups_link_lost") in causes, causes
        assert not [r for r in recs if r["type"] == "state"], causes
    assert b.boots() == boots, "the link loss reset the board"


def test_ups_garbage_on_the_serial_line_is_logged_and_never_shuts_down(q1board):
    b = q1board
    with rc.link(b) as lk:
        s0 = _last_seq(lk)
        b.wires({"ups.link": "garbage"})
        try:
            virtual.wait_for(lambda: lk.request("status")["ups"]["link"] == "lost", 8,
                             "garbage to count as a lost link")
            _assert_online(lk, b)
        finally:
            b.wires({"ups.link": "ok"})
        virtual.wait_for(lambda: lk.request("status")["ups"]["link"] == "ok", 8, "link back")
        _assert_online(lk, b)
        causes = _causes(_log_since(lk, s0 + 1))
        assert ("policy", "ups_link_lost") in causes, causes
        assert not [c for c in causes if c[0] == "state"], causes


def test_ups_low_battery_flashes_on_line_are_logged_not_obeyed(q1board):
    b = q1board
    with rc.link(b) as lk:
        s0 = _last_seq(lk)
        for hold in (0.7, 1.5):   # both under policy.lb_filter_ms (3 s)
            b.wires({"ups.status": "OL LB"})
            time.sleep(hold)
            _assert_online(lk, b)
            b.wires({"ups.status": "auto"})
            time.sleep(1.0)
        _assert_online(lk, b)
        recs = _log_since(lk, s0 + 1)
        flashes = [r for r in recs if (r["data"] or {}).get("cause") == "lb_flash"]
        assert len(flashes) == 2, _causes(recs)
        assert not [r for r in recs if r["type"] == "state"], _causes(recs)


def test_reboot_on_battery_waits_for_the_ups_link_before_judging_it(q1board):
    # A sentinel that reboots during an outage resumes ON_BATTERY before its Q1 link has
    # answered. Not answered yet is not lost: it must not shut the site down for "ups_link_lost"
    # (it did, at once, on the first control step after the boot).
    b = q1board
    with rc.link(b) as lk:
        b.wires({"mains": "off"})
        try:
            virtual.wait_for(lambda: lk.request("status")["state"]["name"] == "ON_BATTERY", 10,
                             "the outage to be seen")
            boots = b.boots()
            b.kill()
            b.wait_booted(boots)
            b.refresh()
        except BaseException:
            b.wires({"mains": "on"})
            raise
    try:
        with rc.link(b) as lk:
            s0 = max(r["seq"] for r in _log_since(lk, 0) if r["type"] == "boot")
            virtual.wait_for(lambda: lk.request("status")["ups"]["link"] == "ok", 10,
                             "the Q1 link to answer after the reboot")
            st = lk.request("status")["state"]["name"]
            causes = _causes(_log_since(lk, s0))
            assert st == "ON_BATTERY", (st, causes)
            assert ("state", "ups_link_lost") not in causes, causes
            assert ("policy", "ups_link_lost") not in causes, causes
    finally:
        b.wires({"mains": "on"})
    with rc.link(b) as lk:
        virtual.wait_for(lambda: lk.request("status")["state"]["name"] == "ONLINE", 30,
                         "the outage to end")


@pytest.fixture(scope="module")
def contactboard(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("ct") / "b")
    b = rc.Board(d, rc.make_config(**{"ups.link": "contacts",
                                      "ups.contacts": "OB=1;LB=2;CAL=3;OFF=4;",
                                      "ups.debounce_ms": 80}))
    try:
        b.wait_serving(10)
        with rc.link(b) as lk:  # the debouncer has settled once (logged as the first status)
            virtual.wait_for(lambda: [r for r in rc.read_log(lk)[0] if r["type"] == "contacts"],
                             10, "the contact inputs to settle")
        yield b
    finally:
        b.stop()


def test_contact_chatter_never_reaches_the_policy(contactboard):
    b = contactboard
    seed, rng = rc.rng()
    with rc.link(b) as lk:
        _assert_online(lk, b)
        s0 = _last_seq(lk)
        end = time.monotonic() + 3.0
        edges = 0
        while time.monotonic() < end:   # OB and LB bouncing faster than the debounce
            line = rng.choice((1, 2))
            b.wires({"contact.%d" % line: "1"})
            time.sleep(rng.uniform(0.002, 0.03))
            b.wires({"contact.%d" % line: "0"})
            time.sleep(rng.uniform(0.002, 0.03))
            edges += 2
        time.sleep(0.5)
        _assert_online(lk, b)
        recs = _log_since(lk, s0 + 1)
        assert not [r for r in recs if r["type"] == "state"], (seed, _causes(recs))
        assert not [r for r in recs if r["type"] == "contacts"], (seed, recs)


def test_contact_chatter_is_logged(contactboard):
    """Finding F3: the debouncer counts chatter (contacts.Debouncer.chatter) but the firmware
    neither logs it nor reports it in status, so a failing relay or a loose UPS cable stays
    invisible until it causes a real misreading."""
    b = contactboard
    with rc.link(b) as lk:
        s0 = _last_seq(lk)
        for _ in range(40):
            b.wires({"contact.1": "1"})
            time.sleep(0.01)
            b.wires({"contact.1": "0"})
            time.sleep(0.01)
        time.sleep(1.5)
        recs = _log_since(lk, s0 + 1)
        st = lk.request("status")
        assert any("chatter" in r["type"] or "chatter" in str(r["data"]) for r in recs) \
            or "chatter" in str(st["ups"]), (recs, st["ups"])


def test_ups_off_during_calibration_is_logged_and_ignored(contactboard):
    b = contactboard
    with rc.link(b) as lk:
        s0 = _last_seq(lk)
        b.wires({"contact.3": "1"})            # CAL (runtime calibration starts)
        time.sleep(0.5)
        b.wires({"contact.4": "1"})            # OFF flashes during the calibration
        time.sleep(0.4)
        b.wires({"contact.4": "0"})
        time.sleep(0.5)
        b.wires({"contact.3": "0"})
        time.sleep(0.5)
        _assert_online(lk, b)
        recs = _log_since(lk, s0 + 1)
        seen = [r["data"]["status"] for r in recs if r["type"] == "contacts"]
        assert any("CAL" in s and "OFF" in s for s in seen), seen
        assert not [r for r in recs if r["type"] == "state"], _causes(recs)
