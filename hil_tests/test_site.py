"""The simulated site without a board: Wake-on-LAN, boot time, health port, power loss."""
import socket
import time

from powersentinel.bench.scenario import from_dict
from powersentinel.bench.site import Site, _magic_target
from powersentinel.paths import use_firmware_lib

use_firmware_lib()
from sentinel.wol import magic_packet  # noqa: E402  (the firmware's own packet)


def _site():
    sc = from_dict({"scenario": {"name": "s", "duration": "1m"},
                    "tiers": [{"name": "apps", "hosts": [
                        {"name": "a", "upsmon": False, "boot": "30s"},
                        {"name": "b", "upsmon": False, "boot": "30s", "wake": "power"}]}],
                    "expect": [{"kind": "no_shutdown"}]})
    return Site(sc, ("127.0.0.1", 9), "u", "p", scale=60)  # 30 s story = 0.5 s wall


def _health_up(site, h):
    s = socket.socket()
    s.settimeout(0.5)
    try:
        s.connect((h.addr, site.health_port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_magic_packet_parsing():
    pkt = bytes(magic_packet("02:50:53:00:00:01"))
    assert _magic_target(pkt) == "025053000001"
    assert _magic_target(b"\xff" * 6 + b"\x01" * 96) == "010101010101"
    assert _magic_target(pkt[:-1]) is None
    assert _magic_target(b"\xff" * 6 + bytes(range(96))) is None


def test_power_loss_wol_boot_and_health():
    site = _site()
    a, b = site.hosts
    site.start()
    try:
        assert a.addr != b.addr and _health_up(site, a)
        site.step(powered=False)
        assert a.state == b.state == "off" and a.crashes and not _health_up(site, a)
        site.step(powered=True)
        assert a.state == "halted"      # waits for its magic packet
        assert b.state == "booting"     # boots on outlet power
        # a packet for another MAC wakes nobody; its own (unicast to its address) wakes it
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(bytes(magic_packet("02:50:53:00:99:99")), ("127.0.0.1", site.wol_port))
        time.sleep(0.05)
        site.step(powered=True)
        assert a.state == "halted"
        u.sendto(bytes(magic_packet(a.mac)), (a.addr, site.wol_port))
        u.close()
        time.sleep(0.05)
        site.step(powered=True)
        assert a.state == "booting" and len(a.wol) == 1
        assert not _health_up(site, a)
        deadline = time.monotonic() + 3
        while a.state != "up" and time.monotonic() < deadline:
            time.sleep(0.05)
            site.step(powered=True)
        assert a.state == "up" and b.state == "up" and _health_up(site, a)
        boot = a.ups_at[-1] - [t for t, s in a.history if s == "booting"][-1]
        assert 0.45 <= boot <= 1.0, boot   # 30 s of story at scale 60
    finally:
        site.close()


def test_one_ups_per_feed_powers_the_servers_on_that_feed():
    sc = from_dict({"scenario": {"name": "s", "duration": "1m"},
                    "mains": {"channels": [{"name": "A"}, {"name": "B"}]},
                    "ups": {"feed": "A", "feeds": [{"feed": "B"}]},
                    "tiers": [{"name": "apps", "hosts": [
                        {"name": "ab", "upsmon": False, "feeds": ["A", "B"]},
                        {"name": "b", "upsmon": False, "feeds": ["B"]},
                        {"name": "all", "upsmon": False}]}],
                    "expect": [{"kind": "no_shutdown"}]})
    site = Site(sc, ("127.0.0.1", 9), "u", "p", scale=60)
    ab, b, every = site.hosts
    site.start()
    try:
        site.step(powered={"A": True, "B": False})   # B's UPS cut its load
        assert (ab.state, b.state, every.state) == ("up", "off", "up")
        assert b.crashes and not ab.crashes
        site.step(powered={"A": False, "B": False})
        assert (ab.state, every.state) == ("off", "off")
        site.step(powered={"A": False, "B": True})   # B's UPS restored first
        assert (ab.state, b.state, every.state) == ("halted", "halted", "halted")
    finally:
        site.close()
