"""The hardware abstraction layer: the only firmware package that may import `machine` or
`network`.

`Board` (hal/board.py) states the whole interface as code; each port's board (`hal.rp2`, `hal.esp32`,
and `hal.virtual`, which runs the same `hal._mcu` code over a `machine` stand-in) subclasses it.
Firmware logic receives the Board from `main.py`, calls these methods directly, never imports a
board module itself, and so runs under a fake board in unit tests.
"""


from hal.board import Board  # noqa: F401  (the interface, for callers of the package)


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
