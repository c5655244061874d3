# MicroPython (virtual board ROM): stands in for `machine` so machine.reset() and
# machine.reset_cause() behave as on a board. The process exits with a code the supervisor reads
# as the reset kind, and it restarts the interpreter on the same pty and flash.
import machine as _builtin
import _vboard

idle = _builtin.idle
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

EXIT_HARD = 3  # supervisor: exit code 3 = machine.reset()
EXIT_SOFT = 4  # supervisor: exit code 4 = machine.soft_reset()


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
    return {"power_on": PWRON_RESET, "hard": HARD_RESET, "wdt": WDT_RESET,
            "soft": SOFT_RESET}.get(_vboard.RESET_CAUSE, HARD_RESET)


def unique_id():
    return b"virtual"


def freq():
    return 240000000
