# MicroPython (virtual board ROM): facts about this virtual board, filled in by rom.py before the
# firmware runs. hal/virtual.py reads them; nothing else should.
BOARD = "virtual"
WIRE = None         # (host, port) of the supervisor's wire socket (ADC, contacts, UART, WDT)
NUT = None          # (host, port) the firmware's NUT server binds
RESET_CAUSE = "power_on"
MACHINE_RESET = False  # the last reset was the firmware's machine.reset()
BLOCKDEV = None     # the FileBlockDev under the flash filesystem (wear counters)
DEGRADED = None     # reason string when the filesystem would not mount
INTENT = None      # host file the `machine` stand-in writes the reset kind to
UID = "virtual"    # per-board id (like machine.unique_id()), from the flash image path
ROMFS = None       # the ROMFS partition (memory mapped by the launcher), or None
ROMFS_FILE = None  # its image file, for writes
PROFILE = "rp2"    # the port profile the `machine` stand-in plays (_vprofiles.py)
SAMPLE_RATE = 4000  # samples per second on the ADC wire: the clock of the hard timers
ADC_PINS = [None]  # the GPIO of each ADC channel on the wire (A frames interleave them)
ISR_PRESET = None  # {attribute: value} set on a hard timer callback's object at Timer.init
WIFI = "up"        # "down": the stand-in's WLAN never connects
CONTACT_PINS = ()  # the profile's pins wired to contact lines 0-7, and to output lines 0-3
OUTPUT_PINS = ()
