# MicroPython (virtual board ROM): facts about this virtual board, filled in by rom.py before the
# firmware runs. hal/virtual.py reads them; nothing else should.
BOARD = "virtual"
WIRE = None         # (host, port) of the supervisor's wire socket (ADC, contacts, UART, WDT)
NUT = None          # (host, port) the firmware's NUT server binds
RESET_CAUSE = "power_on"
BLOCKDEV = None     # the FileBlockDev under the flash filesystem (wear counters)
DEGRADED = None     # reason string when the filesystem would not mount
INTENT = None      # host file the `machine` stand-in writes the reset kind to
UID = "virtual"    # per-board id (like machine.unique_id()), from the flash image path
ROMFS = None       # the ROMFS partition (memory mapped by the launcher), or None
ROMFS_FILE = None  # its image file, for writes
