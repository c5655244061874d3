# MicroPython (virtual board ROM): the `network` module of a virtual board whose profile has one
# (_vprofiles.py). The board's "Wi-Fi" is the host's loopback: the station is connected unless
# the boot parameters say the access point is unreachable (_vboard.WIFI == "down").
import _vboard

STA_IF = 0


class WLAN:
    def __init__(self, interface=STA_IF):
        self._active = False

    def active(self, on=None):
        if on is not None:
            self._active = bool(on)
        return self._active

    def connect(self, ssid=None, key=None):
        if not self._active:
            raise OSError("WLAN not active")

    def isconnected(self):
        return self._active and _vboard.WIFI != "down"

    def ifconfig(self):
        if self.isconnected():
            return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")
