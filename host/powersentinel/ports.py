"""Port names the host accepts: a serial device (/dev/ttyACM0, a pty), any pyserial URL, and
`virtual://DIR` for the virtual board running in DIR (`virtual:DIR` is an alias). Importing this
module registers Power Sentinel's URL handlers with pyserial, so every port is opened through
serial.serial_for_url and the callers never import the virtual board."""
import os

import serial

from .errors import PowerSentinelError

HANDLERS = "powersentinel.urlhandler"
if HANDLERS not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append(HANDLERS)


class PortError(PowerSentinelError):
    """The port cannot be found: no such device, an unknown URL, no virtual board there."""


def url(port):
    """The name serial.serial_for_url understands (`virtual:DIR` becomes `virtual://DIR`)."""
    if port.startswith("virtual:") and not port.startswith("virtual://"):
        return "virtual://" + port[len("virtual:"):]
    return port


def device(port):
    """The device behind `port` (a virtual board's pty for `virtual://DIR`); raises PortError
    when there is none. Network URLs (socket://, rfc2217://) are returned as they are."""
    try:
        dev = serial.serial_for_url(url(port), do_not_open=True).port
    except (serial.SerialException, ValueError) as e:
        raise PortError("cannot open %s: %s" % (port, e))
    if "://" not in dev and not os.path.exists(dev):
        raise PortError("no such port: %s" % dev)
    return dev


def open_serial(port, **kwargs):
    """serial.serial_for_url on `port` (any name device() accepts), opened."""
    return serial.serial_for_url(url(port), **kwargs)
