"""What a running virtual board publishes about itself: DIR/board.json (written by the
supervisor: its pid, the interpreter's pid, the console pty, the NUT address, the firmware once
it reports). Read by the virtual board's controls and by the `virtual://DIR` port handler."""
import json
import os

from ..errors import PowerSentinelError


class VirtualError(PowerSentinelError):
    """An expected failure of the virtual board, reported as one line."""


def board_json(d):
    return os.path.join(os.path.abspath(d), "board.json")


def info(d):
    try:
        with open(board_json(d)) as f:
            return json.load(f)
    except FileNotFoundError:
        raise VirtualError("no virtual board is running in %s (start one with "
                           "`powersentinel virtual start --dir %s`)" % (d, d))
    except ValueError:
        raise VirtualError("%s is damaged: stop the board and start it again" % board_json(d))


def port_of(d):
    """The console pty of the board running in d."""
    return info(d)["serial"]
