"""The hardware abstraction layer: the only firmware package that may import `machine` or
`network`.

Every board module (`hal.virtual`, `hal.esp32`, `hal.rp2`) exposes `make_board(cfg)` returning a
Board: an object with the attributes and methods listed below. Firmware logic receives the Board
(or only the parts it needs) from `main.py`, never imports a board module itself, and so runs
under a fake board in unit tests.

Board interface (duck-typed, in the spirit of micropython-async drivers):
  name                      "virtual" | "esp32" | "rp2"
  adc(rate, block_len)      -> AdcSource: start(); async read() -> memoryview of `block_len`
                             int16 samples (valid until the next read); overruns (blocks lost
                             because the reader was late); rate (actual samples per second)
  contacts()                -> Contacts: read() -> int bitmask of input lines (bit n = line n,
                             1 = high / contact closed); lines (how many)
  outputs()                 -> Outputs: set(line, level); get(line)
  uart(baud)                -> Uart: async write(bytes); async read_until(term, timeout_ms)
                             -> bytes or None on timeout; flush_input()
  network_up()              -> bool; ip() -> str
  nut_bind()                -> (host, port) the NUT server listens on
  watchdog_start(timeout_ms); watchdog_feed()
  time() / set_time(epoch)  wall clock (RTC), seconds since 1970
  reset_cause()             "power_on" | "soft" | "hard" | "wdt" | "crash" | "unknown"
  unique_id()               hex string identifying this board (host logs are kept per board)
  reset()                   does not return
"""


def make_board(cfg=None):
    """The board this firmware runs on, chosen by the port it was built for."""
    import sys

    if sys.platform == "esp32":
        from hal import esp32 as port
    elif sys.platform == "rp2":
        from hal import rp2 as port
    else:
        from hal import virtual as port
    return port.make_board(cfg)
