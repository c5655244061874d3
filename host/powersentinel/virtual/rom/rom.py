# MicroPython: the virtual board's "ROM", the part a real board has frozen in its firmware image.
# It mounts the littlefs flash image at / (hiding the host filesystem), installs the board facts
# and the `machine` stand-in, then runs boot.py and main.py from flash as a board does.
# Parameters come from the supervisor in the PSV_BOOT environment variable (JSON).
import sys
import os
import json
import vfs

_p = json.loads(os.getenv("PSV_BOOT"))
sys.path.insert(0, _p["rom"])
_hw = os.getenv("PSV_HWROM")
if _hw:
    # the launcher's compiled copy of this directory, in memory outside the heap: the stand-ins
    # then cost the heap no more than a board's C modules do
    import uctypes
    _a, _n, _heap = _hw.split(":")
    vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(_a), int(_n))), "/.hwrom")
    sys.path.insert(0, "/.hwrom")
import blockdev
import _vboard

_vboard.PROFILE = _p.get("profile") or "rp2"
_vboard.SAMPLE_RATE = _p.get("sample_rate") or 4000
_vboard.ISR_PRESET = _p.get("isr_preset")
_vboard.ADC_PINS = _p.get("adc_pins") or [None]  # the GPIO of each wire ADC channel
_vboard.WIFI = _p.get("wifi") or "up"
import _vmachine

_vmachine.configure(_vboard.PROFILE)
_vmachine._adc_now = [32768] * len(_vboard.ADC_PINS)
_vboard.CONTACT_PINS = _vmachine._P["contact_pins"]
_vboard.OUTPUT_PINS = _vmachine._P["output_pins"]
sys.modules["machine"] = _vmachine
import _vnetwork

if _vmachine._P["network"]:
    sys.modules["network"] = _vnetwork
import _vwire  # imported now: the host filesystem (this directory) is hidden below
import asyncio

asyncio.ThreadSafeFlag = _vwire.ThreadSafeFlag
_rp = os.getenv("PSV_ROMFS")
if _rp:
    import uctypes
    _a, _n, _path = _rp.split(":", 2)
    _vboard.ROMFS = uctypes.bytearray_at(int(_a), int(_n))
    _vboard.ROMFS_FILE = open(_path, "r+b")  # opened before the host filesystem is hidden
import _vvfs

sys.modules["vfs"] = _vvfs
if _hw:
    import _vgc
    _vgc.HEAP_BYTES = int(_heap)
    sys.modules["gc"] = _vgc
    vfs.umount("/.hwrom")  # every module is loaded; its code stays mapped by the launcher
_vboard.WIRE = ("127.0.0.1", _p["wire_port"])
_vboard.NUT = ("127.0.0.1", _p["nut_port"])
_vboard.RESET_CAUSE = _p["cause"]
_vboard.MACHINE_RESET = bool(_p.get("machine_reset"))
_vboard.UID = _p["uid"]
_raw = _p.get("raw")  # soft reset from the raw REPL: boot.py only, as boards do

_vboard.INTENT = open(_p["intent"], "w")
_f = open(_p["flash"], "r+b")
_bd = blockdev.FileBlockDev(_f)
_vboard.BLOCKDEV = _bd
if _p.get("format"):
    vfs.VfsLfs2.mkfs(_bd)
vfs.umount("/")
try:
    vfs.mount(vfs.VfsLfs2(_bd), "/")
    os.chdir("/")
except OSError as e:
    # Never reformat: the log and config on it may be all the operator has after an incident.
    _vboard.DEGRADED = "filesystem will not mount (OSError %s)" % e.args[0]
sys.path[:] = ["", ".frozen", "/rom", "/rom/lib", "/lib"]  # as boards with a ROMFS have it
if _vboard.ROMFS is not None and bytes(_vboard.ROMFS[:3]) == b"\xd2\xcd\x31":
    try:
        vfs.mount(vfs.VfsRom(_vboard.ROMFS), "/rom")
    except OSError as e:
        print("ROMFS will not mount (OSError %s): running from /lib only\r" % e.args[0])
del _p, _f, _bd

if _vboard.DEGRADED:
    print("\r\nPowerSentinel virtual board: DEGRADED MODE: %s\r" % _vboard.DEGRADED)
    print("The flash was left untouched. Inspect it from the host (powersentinel virtual), or\r")
    print("redeploy; the REPL stays available.\r")
else:
    print("PowerSentinel virtual board; MicroPython %s; reset cause: %s\r"
          % (".".join(str(v) for v in sys.implementation.version[:3]), _vboard.RESET_CAUSE))


def _run(path):
    try:
        os.stat(path)
    except OSError:
        return
    src = open(path).read()
    try:
        exec(src, {"__name__": "__main__", "__file__": path})
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # as a board does: print the traceback, then the REPL
        sys.print_exception(e)


if not _vboard.DEGRADED:
    _run("boot.py")
    if not _raw:
        _run("main.py")
