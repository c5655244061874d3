"""`virtual://DIR`: the console pty of the virtual board running in DIR, found in its
board.json when the port is opened. Any code that opens ports with serial.serial_for_url (Link,
deploy, mpremote's transport) reaches the virtual board through this handler without importing
the board's controls."""
import serial

from ..virtual.board import VirtualError, port_of

SCHEME = "virtual://"


class Serial(serial.Serial):
    """The native serial port, with `virtual://DIR` translated to the board's pty."""

    @serial.Serial.port.setter
    def port(self, value):
        if isinstance(value, str) and value.lower().startswith(SCHEME):
            try:
                value = port_of(value[len(SCHEME):])
            except VirtualError as e:
                raise serial.SerialException(str(e))
        serial.Serial.port.__set__(self, value)
