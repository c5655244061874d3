"""The faults the HIL bench injects into a virtual pair, on the real firmware: the peer link
through a PeerRelay cut and healed (both boards live, each sees the other DEAD, then ALIVE),
and a board's power cut (`virtual.power`): its interpreter dies and stays down (no NUT port,
no heartbeat) while its supervisor, wires and UPS simulator run on; power back boots it from
its flash (cause power_on) and the pair is whole again."""
import json
import os
import socket
import time

import pytest

from powersentinel import virtual
from powersentinel.link import Link
from powersentinel.virtual import pair as vpair
from powersentinel.virtual import wait_for

HEARTBEAT_MS = 300
DEAD_MS = 1500


def peer_state(link):
    try:
        return (link.request("status", timeout=1.0, retries=0).get("pair") or {}).get("state")
    except Exception:
        return None


def nut_open(nut):
    host, port = nut.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pairf"))
    cfg = os.path.join(d, "site.json")
    with open(cfg, "w") as f:
        json.dump({"tiers": [{"name": "tier", "hosts": []}]}, f)
    relay = vpair.PeerRelay()
    meta = vpair.start_pair(d, config=cfg, heartbeat_ms=HEARTBEAT_MS, dead_ms=DEAD_MS,
                            relay=relay)
    try:
        yield meta, relay
    finally:
        vpair.stop_pair(d)
        relay.close()


def test_relay_configs_send_through_the_relay():
    relay = vpair.PeerRelay()
    try:
        a, b, _key, ports = vpair.configs({}, ports=relay.board_ports,
                                          peer_ports=relay.relay_ports)
        assert ports == relay.board_ports
        assert a["pair"]["peer_port"] == relay.relay_ports[0]
        assert b["pair"]["peer_port"] == relay.relay_ports[1]
        assert relay.relay_ports[0] not in relay.board_ports
    finally:
        relay.close()


def test_partition_then_heal(pair):
    meta, relay = pair
    with Link(meta["a"]["board"]["serial"]) as la, Link(meta["b"]["board"]["serial"]) as lb:
        wait_for(lambda: peer_state(la) == "ALIVE" and peer_state(lb) == "ALIVE", 30,
                 "the pair to see each other through the relay")
        relay.cut()
        wait_for(lambda: peer_state(la) == "DEAD" and peer_state(lb) == "DEAD",
                 DEAD_MS / 1000 + 5, "both to see the other dead")
        assert relay.dropped > 0
        relay.heal()
        wait_for(lambda: peer_state(la) == "ALIVE" and peer_state(lb) == "ALIVE", 15,
                 "the pair whole again")


def test_power_cut_keeps_the_site_and_power_back_boots_from_flash(pair):
    meta, _relay = pair
    b_dir, nut_b = meta["b"]["dir"], meta["b"]["board"]["nut"]
    with Link(meta["a"]["board"]["serial"]) as la:
        wait_for(lambda: peer_state(la) == "ALIVE", 30, "A to see B")
        boots = virtual.state(b_dir)["boots"]
        assert virtual.power(b_dir, False)["changed"]
        st = virtual.state(b_dir)  # the supervisor answers: the site's side of the board
        assert st["powered"] is False and st["firmware"] is None
        wait_for(lambda: not nut_open(nut_b), 5, "B's NUT port to close")
        wait_for(lambda: peer_state(la) == "DEAD", DEAD_MS / 1000 + 5, "A to see B dead")
        # nothing restarts it: still down well after a reboot would have been done
        time.sleep(2)
        st = virtual.state(b_dir)
        assert st["boots"] == boots and st["powered"] is False and not nut_open(nut_b)
        assert not virtual.power(b_dir, False)["changed"]
        virtual.power(b_dir, True)
        wait_for(lambda: peer_state(la) == "ALIVE", 40, "A to see B back")
        st = virtual.state(b_dir)
        assert st["boots"] == boots + 1 and st["reset_cause"] == "power_on" and st["powered"]
        assert nut_open(nut_b)
