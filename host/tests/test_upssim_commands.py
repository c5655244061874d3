"""The Q1 UPS simulator obeys the instant commands NUT's REAL Megatec driver sends.

The sentinel's commands send the bytes /lib/nut/nutdrv_qx (protocol megatec) sends for the same
NUT command; here the real driver, behind a real upsd, is asked with the real `upscmd`, and the
simulator must act on what arrives: beeper toggled, battery test running then stopped, the load
cut at once and back on. So the simulator the sentinel's tests use answers a real driver too.
"""
import subprocess

import pytest

from test_ups_fidelity import DriverAndUpsd, PtyUps, pytestmark  # noqa: F401
from powersentinel.virtual import wait_for
from powersentinel.virtual.upssim import UpsSim


@pytest.fixture
def rig(tmp_path):
    t = [1000.0]
    sim = UpsSim(clock=lambda: t[0])
    ups = PtyUps(sim)
    nut = DriverAndUpsd(ups.path, tmp_path)
    write = nut.priv.write_conf

    def conf(name, text):
        if name == "upsd.users":
            text = "[admin]\n  password = pw\n  actions = SET\n  instcmds = ALL\n"
        return write(name, text)
    nut.priv.write_conf = conf
    try:
        nut.start()
        yield sim, ups, nut, t
    finally:
        nut.stop()
        ups.close()


def upscmd(nut, cmd):
    r = subprocess.run(["upscmd", "-u", "admin", "-p", "pw", "sim@127.0.0.1:%d" % nut.port, cmd],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_simulator_obeys_nutdrv_qx_commands(rig):
    sim, ups, nut, t = rig

    def sees(pred, what):
        def ok():
            with ups.lock:
                return pred()
        wait_for(ok, 10, what)

    upscmd(nut, "beeper.toggle")
    sees(lambda: sim.beeper, "the beeper on")
    upscmd(nut, "test.battery.start.quick")
    sees(sim.testing, "a battery test")
    wait_for(lambda: nut.upsc("ups.status") == "OL CAL", 10, "upsd to report CAL")
    upscmd(nut, "test.battery.stop")
    sees(lambda: not sim.testing(), "the test to stop")
    upscmd(nut, "load.off")
    sees(lambda: (sim.tick(), not sim.output_on)[1], "the output off at once")
    assert b"S00R0000" in ups.commands
    upscmd(nut, "load.on")
    sees(lambda: sim.output_on, "the output back on")
    assert b"C" in ups.commands
