"""Fuzz harness: the console framing (sentinel.console.decode) and ConsoleServer.handle_line /
serve under CPython.

    .venv/bin/python host/tests/fuzz_console.py -max_total_time=600      # atheris
    .venv/bin/python host/tests/fuzz_console.py --random 200000          # no atheris

Properties: decode() never raises and returns None or a JSON value; encode(decode(x)) of a
valid frame decodes to the same object; handle_line() never raises, writes at most one frame
per line and every frame it writes decodes; serve() keeps its buffer bounded (MAX_LINE plus one
read) and answers every complete line that carries the marker; a request only reaches a
handler when its frame's CRC is right.
"""
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from powersentinel.paths import use_firmware_lib  # noqa: E402

use_firmware_lib()
from sentinel import console as C  # noqa: E402  # pyright: ignore[reportMissingImports]


def _run(coro):
    """Drive a coroutine that never really waits (our handlers and reader are synchronous)."""
    try:
        while True:
            coro.send(None)
    except StopIteration as e:
        return e.value


class _Reader:
    def __init__(self, chunks):
        self.chunks = list(chunks)

    async def read(self, n):
        if not self.chunks:
            return b""
        c = self.chunks.pop(0)
        assert len(c) <= n
        return c


def _server():
    out = []
    calls = []

    def ok(req):
        calls.append(req)
        return {"echo": req.get("x")}

    def bad(req):
        raise ValueError("refused: %r" % (req.get("x"),))

    def bug(req):
        return 1 // 0

    srv = C.ConsoleServer(out.append, {"ping": ok, "refuse": bad, "bug": bug})
    return srv, out, calls


def one_input(data):
    data = bytes(data[:20000])
    obj = C.decode(data)
    if obj is not None:
        again = C.decode(C.encode(obj))
        assert again == obj, (obj, again)
    # line handling
    srv, out, calls = _server()
    for line in data.split(b"\n"):
        n0 = len(out)
        _run(srv.handle_line(line + b"\n"))
        assert len(out) - n0 <= 1
        for frame in out[n0:]:
            assert frame.startswith(C.MARK) and frame.endswith(b"\r\n")
            assert isinstance(C.decode(frame), dict), frame
    for req in calls:
        assert isinstance(req, dict) and req.get("op") == "ping"
    # the stream reader, in chunks of <= 256 bytes as the firmware reads them
    srv, out, calls = _server()
    chunks = [data[i:i + 256] for i in range(0, len(data), 256)]
    peak = [0]
    orig = srv.handle_line

    async def spy(line):
        peak[0] = max(peak[0], len(line))
        await orig(line)
    srv.handle_line = spy
    _run(srv.serve(_Reader(chunks)))
    assert peak[0] <= C.MAX_LINE + 256, peak[0]
    for frame in out:
        assert isinstance(C.decode(frame), dict)


def _frame(obj):
    return C.encode(obj)


SEEDS = [
    _frame({"id": 1, "op": "ping"}),
    _frame({"id": 2, "op": "refuse", "x": "y"}) + _frame({"id": 3, "op": "bug"}),
    b"noise\r\n@PS1 {\"id\":5,\"op\":\"ping\"} deadbeef\r\n" + _frame({"id": 4, "op": "nope"}),
    b"x" * 5000 + b"\n" + _frame({"id": 6, "op": "ping", "x": [1, 2, {"a": None}]}),
    b"@PS1 [1,2,3] " + b"%08x" % (C.crc32(b"[1,2,3]") & 0xFFFFFFFF) + b"\r\n",
    b"\x00\xff\x03\x04@PS1 @PS1 {} 00000000\n",
]


def mutate(rng, data):
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(5)
        pos = rng.randint(0, len(b))
        if op == 0 and b:
            del b[pos:pos + rng.randint(1, 12)]
        elif op == 1:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        elif op == 2 and b:
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256)
        elif op == 3:
            b[pos:pos] = rng.choice(SEEDS)
        else:
            b[pos:pos] = bytes([rng.choice(b"\n\r{}\"@ ")]) * rng.randint(1, 3000)
    # sometimes re-frame a mutated JSON body so it passes the CRC and reaches the handlers
    if rng.random() < 0.3:
        body = bytes(b).replace(b"\n", b"").replace(b"\r", b"")[:300]
        b = bytearray(b"@PS1 " + body + b" " + b"%08x" % (C.crc32(body) & 0xFFFFFFFF) + b"\r\n")
    return bytes(b)


def random_run(n, seed=0):
    rng = random.Random(seed)
    for _ in range(n):
        one_input(mutate(rng, rng.choice(SEEDS)))
    return n


def main():
    if "--random" in sys.argv:
        n = int(sys.argv[sys.argv.index("--random") + 1])
        random_run(n, int(os.environ.get("PS_REL_SEED", "0")))
        print("ok: %d inputs" % n)
        return
    # optional (not in the dev extras): only the coverage-guided mode needs it
    import atheris  # pyright: ignore[reportMissingModuleSource]
    if os.environ.get("PS_FUZZ_INSTRUMENT", "1") == "1":
        getattr(atheris, "instrument_all")()  # coverage feedback from the firmware modules (~15 s)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
