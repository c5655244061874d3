"""Network faults between the sentinel and a server: the REAL upsmon (NUT
2.8.0) watching the board through a loopback fault proxy (benchmarks/reliability_common.
FaultProxy) that delays, black-holes and partitions the TCP stream.

upsmon's rule: a UPS it cannot reach is "dead" after DEADTIME; a dead UPS last seen on battery
is treated as critical (shutdown); a dead UPS last seen on line is only reported (COMMBAD).
So: on line, no amount of flapping may shut a server down; on battery, a partition must shut
it down within DEADTIME plus one poll (plus upsmon's own read timeout, measured here).
"""
import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "benchmarks"))

import reliability_common as rc  # noqa: E402  # pyright: ignore[reportMissingImports]
from powersentinel import nutreal  # noqa: E402

DEADTIME, POLL = 6, 1
UPSCLI_TIMEOUT = 5  # upsmon's connect/read timeout (NUT 2.8.0)

pytestmark = pytest.mark.skipif(not nutreal.available(), reason="NUT binaries not installed")


@pytest.fixture
def site(tmp_path):
    b = rc.Board(str(tmp_path / "b"), rc.make_config(**{"policy.grace_s": 3600}))
    b.wait_serving(10)
    proxy = rc.FaultProxy(b.nut)
    mon = nutreal.RealUpsmon([nutreal.Monitor(rc.TIER, "127.0.0.1", proxy.port, "monuser",
                                              rc.USERS["monuser"][0])],
                             pollfreq=POLL, pollfreqalert=POLL, deadtime=DEADTIME,
                             hostsync=3, finaldelay=0)
    try:
        mon.start()
        mon.wait_logged_in(10)
        yield b, proxy, mon
    finally:
        mon.stop()
        proxy.close()
        b.stop()


def test_on_line_flaps_delays_and_black_holes_never_shut_down(site):
    b, proxy, mon = site
    proxy.delay_s = 0.5                 # slow link, below upsmon's timeouts
    time.sleep(3)
    proxy.delay_s = 0.0
    proxy.flap(4.0)                     # partition 4 s, pass 4 s, ...
    time.sleep(12)
    proxy.stop_flap()
    proxy.mode = "drop"                 # a long black hole: longer than DEADTIME
    time.sleep(DEADTIME + 3)
    proxy.mode = "pass"
    time.sleep(3)
    assert mon.shutdown_time() is None, mon.log()[-3000:]
    assert mon.running()
    with rc.link(b) as lk:
        assert lk.request("status")["state"]["name"] == "ONLINE"
    print("on line: %d proxy connections, %d chunks black-holed, no shutdown"
          % (proxy.stats["accepted"], proxy.stats["dropped_chunks"]))


def test_on_battery_partition_shuts_down_within_deadtime_plus_one_poll(site):
    b, proxy, mon = site
    b.wires({"mains": "off"})           # long grace: the sentinel itself will not raise FSD
    assert rc.virtual.wait_for(lambda: "OB" in b.nut_get("ups.status"), 10, "OB")
    assert mon.wait_log("on battery", 10), mon.log()[-2000:]
    time.sleep(1.5)
    assert mon.shutdown_time() is None  # on battery alone is no reason (no LB, no FSD)
    t_part = time.time()
    proxy.mode = "partition"
    t_sd = mon.wait_shutdown(DEADTIME + 3 * POLL + 10)
    assert t_sd is not None, mon.log()[-3000:]
    took = t_sd - t_part
    print("on battery + partition: upsmon SHUTDOWNCMD %.2f s after the partition "
          "(DEADTIME %d, POLLFREQALERT %d)" % (took, DEADTIME, POLL))
    # upsmon declares the UPS dead DEADTIME after its last good poll, at its next poll; with a
    # black-hole partition each poll or reconnect blocks for upsmon's network timeout (5 s,
    # NUT's upscli default) first, so the measured bound is DEADTIME + one poll + one timeout
    assert took >= DEADTIME - POLL, "shut down before DEADTIME: %.2f s" % took
    assert took <= DEADTIME + POLL + UPSCLI_TIMEOUT + 1.5, mon.log()[-3000:]
