# The sentinel's asyncio application: builds the tasks around the pure logic modules and runs
# them. main.py calls main(); tests and the virtual board run exactly this.
import asyncio
import gc
import sys
import time

from sentinel import console
from sentinel.version import PROTOCOL, VERSION

CONFIG_PATH = "/config.json"


def _out(data):
    # bytes to the console, on every port (unix has .buffer; boards write bytes to stdout)
    w = getattr(sys.stdout, "buffer", sys.stdout)
    w.write(data)


class Sentinel:
    def __init__(self, board, cfg):
        self.board = board
        self.cfg = cfg
        self.t_boot = time.ticks_ms()
        self.console = console.ConsoleServer(_out, {
            "identify": self.op_identify,
            "status": self.op_status,
            "ping": lambda req: "pong",
        })
        m = cfg["mains"]
        self.rate = m["sample_rate"]
        self.block_len = m["block_len"]
        self.nominal_v = m["nominal_v"]
        self.vpc = m["volts_per_count"]
        self.urms = 0.0
        self.lost = False
        self.alive = {}  # task name -> ticks_ms of last progress (the supervisor checks them)

    # -- console ops -------------------------------------------------------------------------
    def op_identify(self, req):
        return {"firmware": VERSION, "protocol": PROTOCOL, "board": self.board.name,
                "mpy": getattr(sys.implementation, "_mpy", None),
                "uptime_ms": time.ticks_diff(time.ticks_ms(), self.t_boot),
                "reset_cause": self.board.reset_cause()}

    def op_status(self, req=None):
        return {"mains": {"v": round(self.urms, 1), "lost": self.lost},
                "heap": {"free": gc.mem_free(), "alloc": gc.mem_alloc()},
                "uptime_ms": time.ticks_diff(time.ticks_ms(), self.t_boot)}

    def progress(self, name):
        self.alive[name] = time.ticks_ms()

    # -- tasks -------------------------------------------------------------------------------
    async def sampler(self):
        adc = self.board.adc(self.rate, self.block_len)
        adc.start()
        cycle = self.rate // self.cfg["mains"]["nominal_hz"]
        acc = 0
        n = 0
        vpc2 = self.vpc * self.vpc
        while True:
            block = await adc.read()
            for s in block:
                acc += s * s
            n += len(block)
            if n >= cycle:
                self.urms = (acc / n * vpc2) ** 0.5
                lost = self.urms < 0.1 * self.nominal_v
                if lost != self.lost:
                    self.lost = lost
                    self.console.event("mains", lost=lost, v=round(self.urms, 1))
                acc = 0
                n = 0
            self.progress("sampler")

    async def console_task(self):
        reader = asyncio.StreamReader(getattr(sys.stdin, "buffer", sys.stdin))
        await self.console.serve(reader)

    async def reporter(self):
        while True:
            self.console.event("status", **self.op_status())
            hb = getattr(self.board, "heartbeat", None)
            if hb:
                hb({"heap_free": gc.mem_free()})
            await asyncio.sleep_ms(1000)

    async def run(self):
        await self.board.start()
        tasks = [asyncio.create_task(t) for t in self.board.background()]
        hello = getattr(self.board, "hello", None)
        if hello:
            hello({"fw": VERSION, "protocol": PROTOCOL})
        tasks.append(asyncio.create_task(self.sampler()))
        tasks.append(asyncio.create_task(self.console_task()))
        tasks.append(asyncio.create_task(self.reporter()))
        self.console.event("boot", firmware=VERSION, cause=self.board.reset_cause())
        await asyncio.gather(*tasks)


def default_config():
    return {"mains": {"nominal_v": 230.0, "nominal_hz": 50, "sample_rate": 4000,
                      "block_len": 16, "volts_per_count": 0.02}}


def main():
    import hal

    cfg = default_config()
    board = hal.make_board(cfg)
    s = Sentinel(board, cfg)
    try:
        asyncio.run(s.run())
    except KeyboardInterrupt:
        park = getattr(board, "watchdog_park", None)
        if park:
            park()
        raise
    finally:
        asyncio.new_event_loop()
