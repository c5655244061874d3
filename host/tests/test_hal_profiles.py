"""The port profiles the virtual board's `machine` stand-in plays (rom/_vprofiles.py).

- Every `machine.X` / `network.X` the HAL uses exists in each port profile that runs that code:
  the check pyright on the port stubs does not give (the stubs list names a port lacks).
- The stand-in offers exactly what its profile lists, and no other port's names.
- The firmware runs on the virtual board with each profile, and keeps sampling with its ISR
  counters started just below 2**30 (where a 32-bit port's small ints end)."""
import ast
import json
import os
import subprocess
import time

import pytest

from support import REPO, venv_tool
from powersentinel import virtual
from powersentinel.link import Link
from powersentinel.virtual import wait_for
from powersentinel.virtual.rom._vprofiles import PROFILES

HAL = os.path.join(REPO, "firmware", "lib", "hal")
ROM = os.path.join(REPO, "host", "powersentinel", "virtual", "rom")
# which profiles run each HAL file
RUNS_ON = {"__init__.py": list(PROFILES), "board.py": list(PROFILES), "_mcu.py": list(PROFILES),
           "virtual.py": list(PROFILES), "rp2.py": ["rp2", "rp2-pico"], "esp32.py": ["esp32"],
           "adcpins.py": list(PROFILES)}
# the stand-in's own public names besides the machine API: its set-up entry point and constants
STAND_IN_OWN = {"configure", "EXIT_HARD", "EXIT_SOFT", "PROFILES"}


def _uses(path, module):
    """Dotted names used as `module.X` or `module.X.Y` in a file (getattr with a default is a
    probe for an optional name, not a use)."""
    tree = ast.parse(open(path).read(), path)
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id == module:
            name = node.attr
            up = parents.get(node)
            if isinstance(up, ast.Attribute) and up.value is node and up.attr[:1].isupper():
                name += "." + up.attr  # a class constant such as Pin.IN
            used.add(name)
    return used


def test_the_check_sees_what_the_hal_uses():
    used = _uses(os.path.join(HAL, "_mcu.py"), "machine")
    assert {"Timer", "Timer.PERIODIC", "Pin.IN", "Pin.PULL_UP", "WDT", "reset_cause"} <= used
    assert {"WLAN", "STA_IF"} <= _uses(os.path.join(HAL, "_mcu.py"), "network")
    assert "ADC.ATTN_11DB" in _uses(os.path.join(HAL, "esp32.py"), "machine")


@pytest.mark.parametrize("fname", sorted(RUNS_ON))
def test_every_machine_and_network_name_the_hal_uses_exists_in_each_profile(fname):
    path = os.path.join(HAL, fname)
    missing = []
    for prof in RUNS_ON[fname]:
        p = PROFILES[prof]
        for name in sorted(_uses(path, "machine")):
            if name not in p["machine"]:
                missing.append("%s: machine.%s not on %s" % (fname, name, prof))
        for name in sorted(_uses(path, "network")):
            # a profile without `network` is fine: the HAL imports it inside a try
            if p["network"] is not None and name not in p["network"]:
                missing.append("%s: network.%s not on %s" % (fname, name, prof))
    assert not missing, missing


def test_every_hal_file_is_assigned_to_profiles():
    files = {f for f in os.listdir(HAL) if f.endswith(".py")}
    assert files == set(RUNS_ON), files ^ set(RUNS_ON)


_OFFERED = """
import sys, json
sys.path.insert(0, %r)
import _vboard
import _vmachine
out = {}
for prof in %r:
    _vmachine.configure(prof)
    names = [k for k in _vmachine.__dict__ if not k.startswith("_")
             and type(getattr(_vmachine, k)) is not type(sys)]
    for cls in ("Pin", "Timer", "ADC", "UART", "WDT", "RTC"):
        if hasattr(_vmachine, cls):
            c = getattr(_vmachine, cls)
            names += ["%%s.%%s" %% (cls, a) for a in dir(c)
                      if a[:1].isupper() and not callable(getattr(c, a))]
    out[prof] = sorted(names)
print(json.dumps(out))
"""


def test_the_stand_in_offers_exactly_what_each_profile_lists():
    r = subprocess.run([venv_tool("micropython"), "-c", _OFFERED % (ROM, sorted(PROFILES))],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    offered = json.loads(r.stdout)
    for prof, p in PROFILES.items():
        assert set(offered[prof]) - STAND_IN_OWN == set(p["machine"]), prof
    assert "HARD_RESET" not in offered["rp2"] and "HARD_RESET" in offered["esp32"]


def _status(port):
    with Link(port) as link:
        return link.request("status")


@pytest.mark.parametrize("profile", ["rp2", "esp32"])
def test_sampling_goes_on_through_the_isr_counters_wrap(tmp_path, profile):
    """The ADC's block counters start 200 blocks (0.8 s at 4 kHz / 16) below 2**30 - 1, where
    they wrap; a counter that crossed 2**30 would fail the hard IRQ as on a 32-bit port."""
    top = (1 << 30) - 1
    preset = {"blocks": top - 200, "rblocks": top - 200}
    d = str(tmp_path / "b")
    virtual.start(d, extra_args=("--profile", profile, "--isr-preset", json.dumps(preset)))
    try:
        meta = virtual.info(d)
        assert meta["profile"] == profile
        t0 = time.monotonic()
        wait_for(lambda: _status(meta["serial"])["uptime_ms"] > 3000, 30, "3 s of uptime")
        st = _status(meta["serial"])
        # the wrap came 0.8 s after sampling began; the mains is still measured, nothing lost
        assert st["mains"]["good"] and abs(st["mains"]["v"] - 230.0) < 5, st["mains"]
        assert st["adc"]["overruns"] == 0, st["adc"]
        # the ROM's own modules are left out of the heap figures: 128wK as on the device
        total = st["heap"]["free"] + st["heap"]["alloc"]
        assert abs(total - 259072) < 1024, st["heap"]
        v0 = virtual.state(d)["mains"]["samples"]
        virtual.set_wires(d, {"mains": "off"})
        wait_for(lambda: _status(meta["serial"])["mains"]["lost"], 10,
                 "the firmware to see the outage (samples still flowing)")
        assert virtual.state(d)["mains"]["samples"] > v0
        log = open(os.path.join(d, "console.log"), "rb").read()
        assert b"Uncaught exception in IRQ" not in log
        assert b"PowerSentinel virtual board" in log
        # the knob reached the ADC's interrupt handler
        assert b"hard IRQ preset: blocks = %d" % (top - 200) in log, log[-2000:]
        print("%s: wrapped and sampling %.1f s after start" % (profile, time.monotonic() - t0))
    finally:
        virtual.stop(d)


@pytest.mark.parametrize("profile", ["rp2", "esp32"])
def test_three_channels_sample_through_the_isr_counters_wrap(tmp_path, profile):
    """Three mains channels read in turn by the one hard IRQ (each port's default ADC pins),
    with its block counters started 200 blocks below the wrap: every phase measured, no IRQ
    failure, then one phase lost alone."""
    top = (1 << 30) - 1
    preset = {"blocks": top - 200, "rblocks": top - 200}
    cfg = str(tmp_path / "config.json")
    with open(cfg, "w") as f:
        json.dump({"version": 1, "mains": {"channels": [{"name": "L1"}, {"name": "L2"},
                                                        {"name": "L3"}]}}, f)
    d = str(tmp_path / "b")
    virtual.start(d, config=cfg,
                  extra_args=("--profile", profile, "--isr-preset", json.dumps(preset)))
    try:
        meta = virtual.info(d)
        pins = [c["pin"] for c in virtual.state(d)["mains"]["channels"]]
        assert pins == ([26, 27, 28] if profile == "rp2" else [34, 35, 32])

        def three_good():
            ch = _status(meta["serial"])["mains"].get("channels") or []
            return len(ch) == 3 and all(c["good"] and abs(c["v"] - 230.0) < 5 for c in ch)
        wait_for(three_good, 30, "three good phases")
        wait_for(lambda: _status(meta["serial"])["uptime_ms"] > 3000, 30, "3 s of uptime")
        assert three_good()
        st = _status(meta["serial"])
        assert st["adc"]["overruns"] == 0, st["adc"]
        virtual.set_wires(d, {"mains.L3": "off"})

        def l3_lost():
            ch = {c["name"]: c for c in _status(meta["serial"])["mains"]["channels"]}
            return ch["L3"]["lost"] and not ch["L1"]["lost"] and not ch["L2"]["lost"]
        wait_for(l3_lost, 10, "L3 lost alone")
        log = open(os.path.join(d, "console.log"), "rb").read()
        assert b"Uncaught exception in IRQ" not in log
        assert b"hard IRQ preset: blocks = %d" % (top - 200) in log, log[-2000:]
    finally:
        virtual.stop(d)


def _mpremote(d, port, *args):
    """mpremote on the running board. The one retry: the virtual board's known limitation
    (docs/bench.md): a Ctrl-C landing while the heap is locked, as it is in every hard IRQ on this
    profile, kills the interpreter; mpremote then waits forever on the pty. The retry is allowed
    only when that is what happened (the board's last reset is a crash)."""
    cmd = [venv_tool("mpremote"), "connect", port, "resume"] + list(args)
    boots = virtual.info(d)["boots"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        meta = virtual.info(d)
        assert meta["boots"] > boots and meta["reset_cause"] == "crash", meta
        wait_for(lambda: virtual.info(d).get("firmware"), 30, "the board to boot after the crash")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _reboot_with(d, port, code):
    boots = virtual.info(d)["boots"]
    _mpremote(d, port, "exec", "--no-follow", code)

    def rebooted():  # by the code, not by a crash that _mpremote retried after
        meta = virtual.info(d)
        return meta["boots"] > boots and meta["reset_cause"] != "crash" and meta.get("firmware")
    wait_for(rebooted, 30, "the board to boot again")
    with Link(port) as link:
        return link.request("identify")["reset_cause"]


def test_rp2_reset_causes_and_the_watchdog_at_the_repl(vboard):
    """On the rp2 profile: a reset the firmware asks for reads "hard", a bare machine.reset()
    reads as the watchdog reset rp2 reports; a developer at the REPL is not reset by the
    watchdog, which keeps running (rp2's cannot be stopped)."""
    d, port = vboard["dir"], vboard["serial"]
    assert virtual.info(d)["profile"] == "rp2"
    assert _reboot_with(d, port, "from hal._mcu import McuBoard\nMcuBoard().reset()") == "hard"
    assert _reboot_with(d, port, "import machine\nmachine.reset()") == "wdt"
    wait_for(lambda: virtual.state(d)["wdt_ms"], 20, "the firmware to arm its watchdog")
    assert "42" in _mpremote(d, port, "exec", "print(6 * 7)")  # interrupts the firmware: the REPL
    boots = virtual.info(d)["boots"]
    st = virtual.state(d)
    assert st["wdt_ms"] == 8000, st["wdt_ms"]  # still armed: never stopped through the wire
    deadline = time.monotonic() + 2.5 * st["wdt_ms"] / 1000
    while time.monotonic() < deadline:  # two and a half watchdog periods at the REPL
        assert virtual.info(d)["boots"] == boots, "the watchdog reset the board at the REPL"
        time.sleep(0.5)
    assert virtual.state(d)["wdt_ms"] == 8000
    assert "ok" in _mpremote(d, port, "exec", "print('ok')")


def test_virtual_start_takes_a_profile_and_a_plain_pico_runs_without_network(tmp_path):
    exe = venv_tool("powersentinel")
    d = str(tmp_path / "pico")
    r = subprocess.run([exe, "virtual", "start", "--dir", d, "--profile", "pico2"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "'pico2' is not one of" in r.stderr, r.stderr
    r = subprocess.run([exe, "virtual", "start", "--dir", d, "--profile", "rp2-pico"],
                       capture_output=True, text=True, timeout=300)
    try:
        assert r.returncode == 0, r.stdout + r.stderr
        meta = json.loads(r.stdout)
        assert meta["profile"] == "rp2-pico"
        with Link(meta["serial"]) as link:
            ident = link.request("identify")
            st = link.request("status")
        # no `network` module on this image: reported, and the sentinel keeps sensing
        assert ident["network"] == "absent", ident
        assert st["mains"]["good"], st["mains"]
    finally:
        virtual.stop(d)


def test_a_deploy_reboot_is_not_counted_as_a_crash_on_rp2(vboard):
    from powersentinel.deploy import deploy
    d, port = vboard["dir"], vboard["serial"]
    boots = virtual.info(d)["boots"]
    deploy(port, log=lambda *a: None)
    wait_for(lambda: virtual.info(d)["boots"] > boots and virtual.info(d).get("firmware"), 30,
             "the board to boot after the deploy")
    with Link(port) as link:
        assert link.request("identify")["reset_cause"] == "hard"
