# MicroPython (virtual board ROM): the `machine` module of the virtual board, playing one port
# profile (_vprofiles.py) so the firmware's real-board HAL (hal/_mcu.py) runs unchanged on it.
# It owns the pins' state; the wire client (_vwire.py) feeds it (ADC samples, contact levels, UART
# bytes) and carries what it sends (outputs, UART bytes, watchdog). configure() makes the module
# offer exactly the names the profile lists.
#
# What behaves as on the port:
# - Timer ids: an id the port lacks raises ValueError("Timer doesn't exist").
# - Hard timer callbacks run with the heap locked, clocked by the wire's ADC sample clock (a
#   stall of the firmware's loop delivers the backlog in a burst, which overruns the ring as the
#   real ISR would). An exception in one prints "Uncaught exception in IRQ callback handler" and
#   disables the timer, as shared/runtime/softtimer.c does.
# - 31-bit small ints: the unix port's small ints are 62-bit, so an ISR counter crossing 2**30
#   would not allocate here. The wrapper therefore checks, after each call, the int attributes the
#   callback's object had when the timer started and raises MemoryError when one left the 31-bit
#   range, which is where the 32-bit port's `+=` allocates a long int under the lock and fails.
# - Soft timer callbacks run in a thread in real time (a board runs them while at the REPL too).
# - UART bytes arrive at baud/10 per second; read(n) with fewer than n bytes blocks until the
#   n-th byte or until the line is quiet for timeout_char (rp2: at least 13 bit times), so a
#   StreamReader.read(64) on it freezes the caller as on the board.
# - reset() reads back as the profile says (rp2: WDT_RESET); the WDT cannot be stopped.
import io
import struct
import time

import machine as _builtin
import micropython
import uctypes
import _thread

import _vboard
from _vprofiles import PROFILES

EXIT_HARD = 3  # supervisor: exit code 3 = machine.reset()
EXIT_SOFT = 4  # supervisor: exit code 4 = machine.soft_reset()
_SMALL = 1 << 30  # 32-bit ports: small ints are -2**30 .. 2**30-1

_P = None         # the profile in use (configure)
_send = None      # the wire's send(kind, payload), set by _vwire
_adc_now = [32768]  # each wire ADC channel's present value (u16), _vboard.ADC_PINS order
_hard = []        # running hard timers, clocked by ADC samples
_soft = []        # running soft timers, run by the soft-timer thread
_soft_thread = False
_uart = None      # the UART the wire's serial line is connected to
_uart2 = None     # the second UPS's UART (the profile's uart2_id; "V" frames)
_contacts = bytearray(8)
_outputs = bytearray(4)
_irq_errors = 0   # uncaught exceptions in hard callbacks (tests read it)


class _Probe:
    def m(self):
        pass


_BOUND = type(_Probe().m)
_W = struct.calcsize("P")


def _self_of(cb):
    """The object a bound method is bound to (MicroPython has no __self__): read the method
    object's third word (mp_obj_bound_meth_t.self) and store it into a list's item slot."""
    if type(cb) is not _BOUND:
        return None
    ptr = struct.unpack_from("P", uctypes.bytearray_at(id(cb), 3 * _W), 2 * _W)[0]
    holder = [None]
    items = struct.unpack_from("P", uctypes.bytearray_at(id(holder), 4 * _W), 3 * _W)[0]
    struct.pack_into("P", uctypes.bytearray_at(items, _W), 0, ptr)
    return holder[0]


def _wire(kind, payload=b""):
    if _send is not None:
        _send(kind, payload)


def _intent(kind):
    # The exit code alone is lost when reset() runs in the raw REPL, so say it on a side file
    # the ROM opened before the host filesystem was hidden.
    f = _vboard.INTENT
    if f is not None:
        f.seek(0)
        f.write(kind)
        f.flush()


def reset():
    _intent("hard")
    raise SystemExit(EXIT_HARD)


def soft_reset():
    _intent("soft")
    raise SystemExit(EXIT_SOFT)


def reset_cause():
    c = "machine_reset" if _vboard.MACHINE_RESET else _vboard.RESET_CAUSE
    return _P["reset_causes"].get(c, 0)


def unique_id():
    import binascii  # only once per boot
    try:
        return binascii.unhexlify(_vboard.UID)
    except ValueError:
        return _vboard.UID.encode()


def freq():
    return 125000000


idle = _builtin.idle


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1

    def __init__(self, pin_id, mode=-1, pull=-1, value=None):
        self.id = pin_id
        self.mode = mode
        self._in = _line(_P["contact_pins"], pin_id)
        self._out = _line(_P["output_pins"], pin_id)
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            if self._out >= 0 and self.mode == 1:  # Pin.OUT
                return _outputs[self._out]
            return _contacts[self._in] if self._in >= 0 else 1  # pulled up, unconnected
        if self._out >= 0:
            _outputs[self._out] = 1 if v else 0
            _wire(b"O", bytes(_outputs))


def _line(pins, pin_id):
    for i, p in enumerate(pins):
        if p == pin_id:
            return i
    return -1


class ADC:
    """An ADC input: the wire channel of its pin (_vboard.ADC_PINS). With one wire channel
    every input reads it (as before multi-channel sensing); with several, an ADC input of the
    port that no channel is wired to reads mid-scale (0 V), and a pin that is no ADC input
    raises ValueError as the port does."""
    ATTN_11DB = 3

    def __init__(self, src):
        pid = src.id if isinstance(src, Pin) else src
        wired = _vboard.ADC_PINS
        self._ch = 0
        if len(wired) > 1:
            if pid in wired:
                self._ch = wired.index(pid)
            elif pid in _P["adc_pins"]:
                self._ch = -1
            else:
                raise ValueError("invalid Pin for ADC")

    def atten(self, a):
        pass

    def read_u16(self):
        c = self._ch
        return _adc_now[c] if c >= 0 else 32768


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, timer_id=-1, **kw):
        if timer_id not in _P["timer_ids"]:
            raise ValueError("Timer doesn't exist")
        self.id = timer_id
        self._cb = None
        if kw:
            self.init(**kw)

    def init(self, mode=1, freq=None, period=None, callback=None, hard=False):
        global _soft_thread
        self.deinit()
        self._freq = freq if freq is not None else 1000 / (period or 1000)
        self._periodic = mode == 1  # Timer.PERIODIC
        self._cb = callback
        self._acc = 0
        self._obj = _self_of(callback)
        ints = []
        if self._obj is not None and hasattr(self._obj, "__dict__"):
            for k, v in (_vboard.ISR_PRESET or {}).items():
                if hasattr(self._obj, k):  # a boot knob: start the ISR's counters late
                    setattr(self._obj, k, v)
                    print("[rom] hard IRQ preset: %s = %d\r" % (k, v))
            d = self._obj.__dict__
            ints = [k for k in d if type(d[k]) is int]
        self._ints = ints
        if hard:
            _hard.append(self)
        else:
            self._due = time.ticks_add(time.ticks_ms(), int(1000 / self._freq))
            _soft.append(self)
            if not _soft_thread:
                _soft_thread = True
                _thread.start_new_thread(_run_soft, ())

    def deinit(self):
        for lst in (_hard, _soft):
            if self in lst:
                lst.remove(self)


def _irq_error(t, e):
    global _irq_errors
    _irq_errors += 1
    print("Uncaught exception in IRQ callback handler")
    import sys  # only after a failure
    sys.print_exception(e)
    t.deinit()


def _fire(t):
    cb = t._cb
    micropython.heap_lock()
    try:
        cb(t)
    except KeyboardInterrupt:  # Ctrl-C belongs to the main program, not the "IRQ"
        micropython.heap_unlock()
        raise
    except Exception as e:
        micropython.heap_unlock()
        _irq_error(t, e)
        return
    micropython.heap_unlock()
    obj = t._obj
    for k in t._ints:
        v = getattr(obj, k)
        if v >= _SMALL or v < -_SMALL:
            _irq_error(t, MemoryError("memory allocation failed, heap is locked"))
            return
    if not t._periodic:
        t.deinit()


def _adc_feed(buf, n):
    """n int16 LE samples (centred on zero) from buf, interleaved by wire channel (one per
    _vboard.ADC_PINS entry): each group of channels is the ADC inputs' values for one tick of
    the sample clock that drives the hard timers."""
    rate = _vboard.SAMPLE_RATE
    now = _adc_now
    nch = len(now)
    j = 0
    for _ in range(n // nch):
        for c in range(nch):
            now[c] = (buf[j] | (buf[j + 1] << 8)) ^ 0x8000
            j += 2
        for t in _hard:
            t._acc += t._freq
            while t._acc >= rate and t._cb is not None:
                t._acc -= rate
                _fire(t)


def _run_soft():
    while True:
        now = time.ticks_ms()
        for t in _soft:
            if time.ticks_diff(now, t._due) >= 0:
                t._due = time.ticks_add(t._due, int(1000 / t._freq))
                try:
                    t._cb(t)
                except Exception as e:
                    print("Uncaught exception in soft timer callback")
                    import sys
                    sys.print_exception(e)
                    t.deinit()
                    continue
                if not t._periodic:
                    t.deinit()
        time.sleep_ms(10)


class WDT:
    def __init__(self, wdt_id=0, timeout=5000):
        top = _P["wdt_max_ms"]
        if top is not None and timeout > top:
            raise ValueError("timeout exceeds %d" % top)
        _wire(b"W", bytes((timeout & 255, (timeout >> 8) & 255, (timeout >> 16) & 255,
                           timeout >> 24)))

    def feed(self):
        _wire(b"W")


class RTC:
    def datetime(self, t=None):
        # The virtual board's clock is the host's; hal/virtual.py keeps the offset.
        if t is None:
            g = time.gmtime()
            return (g[0], g[1], g[2], g[6], g[3], g[4], g[5], 0)


def _uart_min_tc(baud):
    if _P["uart_min_timeout_char"] == "rp2":
        return 13000 // baud + 1
    return 0


class UART(io.IOBase):  # a stream, so asyncio can poll it as on the port
    def __init__(self, uart_id, baudrate=115200, bits=8, parity=None, stop=1, tx=None, rx=None,
                 timeout=0, timeout_char=0, rxbuf=None):
        global _uart, _uart2
        if uart_id not in _P["uart_ids"]:
            raise ValueError("UART(%d) doesn't exist" % uart_id)
        self.baud = baudrate
        self._char_us = 10 * 1000000 // baudrate  # 8N1: 10 bits a character
        self.timeout = timeout
        self.timeout_char = max(timeout_char, _uart_min_tc(baudrate))
        self._cap = rxbuf or _P["uart_rxbuf"]
        self._rx = bytearray()
        self._t = []  # arrival time (ticks_us) of each byte in _rx
        if uart_id == _P.get("uart2_id"):
            self._kind = b"V"
            _uart2 = self
        else:
            self._kind = b"U"
            _uart = self

    def _arrive(self, data):
        now = time.ticks_us()
        t = now
        if self._t and time.ticks_diff(self._t[-1], now) > 0:
            t = self._t[-1]  # the line is still busy with earlier bytes
        for b in data:
            t = time.ticks_add(t, self._char_us)
            if len(self._rx) < self._cap:  # the FIFO overflows rather than grows
                self._rx.append(b)
                self._t.append(t)

    def any(self):
        now = time.ticks_us()
        n = 0
        for t in self._t:
            if time.ticks_diff(now, t) < 0:
                break
            n += 1
        return n

    def _take(self, n):
        out = bytes(self._rx[:n])
        self._rx = self._rx[n:]
        self._t = self._t[n:]
        return out

    def read(self, n=None):
        have = self.any()
        if n is None:
            n = have if have else 1
        if have >= n:
            return self._take(n)
        # Block as the port does: the first byte may take `timeout`, each next one at most
        # `timeout_char` after the previous; only bytes already on the wire can arrive.
        now = time.ticks_us()
        end = time.ticks_add(now, 1000 * self.timeout)
        got = have
        last = self._t[have - 1] if have else None
        if not have and self._t and time.ticks_diff(self._t[0], end) <= 0:
            got, last = 1, self._t[0]
        if got:
            while got < n and got < len(self._t) and \
                    time.ticks_diff(self._t[got], last) <= 1000 * self.timeout_char:
                last = self._t[got]
                got += 1
            end = last if got == n else time.ticks_add(last, 1000 * self.timeout_char)
        wait = time.ticks_diff(end, time.ticks_us())
        if wait > 0:
            time.sleep_us(wait)
        return self._take(got) if got else None

    def write(self, data):
        _wire(self._kind, bytes(data))
        return len(data)

    def readinto(self, buf):
        data = self.read(len(buf))
        if not data:
            return None
        buf[:len(data)] = data
        return len(data)

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL
            return (1 if self.any() else 0) & arg | 4 & arg  # readable; always writable
        return 0


def configure(name):
    """Play profile `name`: offer exactly the `machine` names it lists."""
    global _P
    _P = PROFILES[name]
    g = globals()
    for k, v in _IMPL.items():
        if "." in k:
            cls, attr = k.split(".")
            if hasattr(_IMPL[cls], attr):
                delattr(_IMPL[cls], attr)
        elif k in g:
            del g[k]
    for k in _P["machine"]:
        if "." in k:
            cls, attr = k.split(".")
            setattr(_IMPL[cls], attr, _IMPL[k])
        else:
            g[k] = _IMPL[k]


_IMPL = {"ADC": ADC, "ADC.ATTN_11DB": 3, "Pin": Pin, "Pin.IN": 0, "Pin.OUT": 1,
         "Pin.PULL_UP": 1, "UART": UART, "Timer": Timer, "Timer.PERIODIC": 1,
         "Timer.ONE_SHOT": 0, "WDT": WDT, "RTC": RTC, "reset": reset, "soft_reset": soft_reset,
         "reset_cause": reset_cause, "unique_id": unique_id, "idle": idle, "freq": freq,
         "PWRON_RESET": 1, "HARD_RESET": 2, "WDT_RESET": 3, "DEEPSLEEP_RESET": 4,
         "SOFT_RESET": 5}
