"""NUT on the virtual board (the deployed firmware, real sockets on loopback).

Connection shedding: clients that keep polling keep their connections, logged in or not, while
sockets that never send a byte come and go; a newcomer that speaks is served; when every place
is held by an active or logged-in client, a silent newcomer is refused and nobody else is
disturbed. Also what the firmware serves: the nominal ratings from the config, and no variable
with an empty value."""
import json
import os
import socket
import threading
import time

import pytest

from powersentinel import virtual
from powersentinel.nutreal import NutClient
from powersentinel.paths import use_firmware_lib

use_firmware_lib()
from sentinel.passwd import hash_password  # noqa: E402  # pyright: ignore[reportMissingImports]

MAX_CONNS = 8
USER, PASSWORD = "mon", "shed-test-pw"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    base = tmp_path_factory.mktemp("shed")
    cfg = {"version": 1, "site": {"name": "shed-test"},
           "nut": {"max_conns": MAX_CONNS, "idle_timeout_s": 60,
                   "users": [{"name": USER, "password": hash_password(PASSWORD),
                              "role": "secondary"}]},
           "mains": {"nominal_v": 230.0, "nominal_hz": 50},
           "tiers": [{"name": "apps", "max_wait_s": 60, "hosts": []}]}
    path = str(base / "config.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    d = str(base / "board")
    meta = virtual.start(d, config=path)
    host, port = meta["nut"].split(":")
    addr = (host, int(port))

    def answers():
        try:
            with NutClient(*addr, timeout=2) as c:
                return c.cmd("GET VAR apps ups.status")[0].startswith("VAR ")
        except OSError:
            return False

    try:
        virtual.wait_for(answers, 30, "the board to serve NUT", interval=0.2)
        yield addr
    finally:
        virtual.stop(d)


class Poller(threading.Thread):
    """Polls `GET VAR apps ups.status` once a second on one connection, as upsmon (logged in)
    or collectd (not logged in) do; counts replies and every error."""

    def __init__(self, addr, login):
        super().__init__(daemon=True)
        self.addr, self.login = addr, login
        self.ok = 0
        self.errors = []
        self.stop = threading.Event()
        self.c = None
        # the previous test's connections may not all be dropped yet: retry while refused
        virtual.wait_for(self._connect, 10, "a place for a poller", interval=0.1)

    def _connect(self):
        c = NutClient(*self.addr, timeout=3)
        try:
            lines = ["USERNAME " + USER, "PASSWORD " + PASSWORD, "LOGIN apps"] if self.login else []
            for line in lines + ["GET VAR apps ups.status"]:
                if not c.cmd(line)[0].startswith(("OK", "VAR ")):
                    raise AssertionError("%s refused" % line)
        except (OSError, EOFError):
            c.close()
            return False
        self.c = c
        self.ok = 1
        return True

    def poll(self):
        try:
            rep = self.c.cmd("GET VAR apps ups.status")
            if rep[0].startswith('VAR apps ups.status "'):
                self.ok += 1
            else:
                self.errors.append(rep)
        except (OSError, EOFError) as e:
            self.errors.append(repr(e))
            self.stop.set()

    def run(self):
        while not self.stop.wait(1.0):
            self.poll()

    def close(self):
        self.stop.set()
        if self.is_alive():
            self.join(5)
        if self.c is not None:
            self.c.close()


def _closed_by_server(s, timeout):
    """True once the server closed `s` (EOF), False if it is still open after `timeout`."""
    s.settimeout(timeout)
    try:
        return s.recv(10) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def _wait_polls(pollers, more, timeout):
    want = [p.ok + more for p in pollers]
    virtual.wait_for(lambda: all(p.ok >= w or p.errors for p, w in zip(pollers, want)), timeout,
                     "%d more polls from every poller" % more, interval=0.1)


def test_pollers_keep_their_places_against_silent_sockets(board):
    # 6 pollers, half of them never logged in: 2 places left for the silent sockets
    pollers = [Poller(board, login=i % 2 == 0) for i in range(6)]
    silent = []
    try:
        for p in pollers:
            p.start()
        _wait_polls(pollers, 1, 10)
        for _ in range(8):
            silent.append(socket.create_connection(board, timeout=3))
            time.sleep(0.05)  # one at a time, as they come
        _wait_polls(pollers, 3, 15)
        assert [p.errors for p in pollers] == [[]] * 6
        # each silent newcomer beyond the 2 free places pushed out the oldest silent one
        closed = [_closed_by_server(s, 0.5) for s in silent]
        assert closed == [True] * 6 + [False] * 2
        # a newcomer that speaks is served (it sheds a silent socket), the pollers go on
        with NutClient(*board, timeout=3) as late:
            assert late.cmd("GET VAR apps ups.status")[0].startswith("VAR apps ups.status")
        assert _closed_by_server(silent[6], 3)
        _wait_polls(pollers, 1, 10)
        assert [p.errors for p in pollers] == [[]] * 6
    finally:
        for s in silent:
            s.close()
        for p in pollers:
            p.close()


def test_silent_newcomer_refused_when_every_place_is_active(board):
    pollers = [Poller(board, login=i < 3) for i in range(MAX_CONNS)]
    try:
        for p in pollers:
            p.start()
        _wait_polls(pollers, 1, 10)
        for _ in range(8):
            s = socket.create_connection(board, timeout=3)
            try:
                assert _closed_by_server(s, 3)  # refused: closed at once, without a reply
            finally:
                s.close()
        _wait_polls(pollers, 2, 10)
        assert [p.errors for p in pollers] == [[]] * MAX_CONNS
    finally:
        for p in pollers:
            p.close()


def test_nominal_ratings_served_and_no_empty_value(board):
    with NutClient(*board, timeout=3) as c:
        lines = c.cmd("LIST VAR apps")
    vals = {}
    for ln in lines[1:-1]:
        name, _, val = ln[len("VAR apps "):].partition(" ")
        vals[name] = val
    assert vals["input.voltage.nominal"] == '"230"' and vals["input.frequency.nominal"] == '"50"'
    # no host is planned for the tier: no list of hosts to show
    assert vals["sentinel.coverage.connected"] == vals["sentinel.coverage.missing"] == '"none"'
    assert [k for k, v in vals.items() if v == '""'] == []
