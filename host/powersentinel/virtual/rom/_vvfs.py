# MicroPython (virtual board ROM): stands in for `vfs`, adding the ROMFS partition interface
# (`vfs.rom_ioctl`) that boards with a ROMFS partition have. The partition is the memory the
# launcher mapped; writes also go to the image file so they survive a reboot.
import vfs as _vfs

import _vboard

mount = _vfs.mount
umount = _vfs.umount
VfsLfs2 = _vfs.VfsLfs2
VfsLfs1 = _vfs.VfsLfs1
VfsFat = _vfs.VfsFat
VfsPosix = _vfs.VfsPosix
VfsRom = _vfs.VfsRom

_EINVAL = -22


def rom_ioctl(op, *args):
    rom = _vboard.ROMFS
    if op == 1:   # number of segments
        return 1 if rom is not None else 0
    if rom is None or not args or args[0] != 0:
        return _EINVAL
    if op == 2:   # the segment's memory
        return memoryview(rom)
    if op == 3:   # prepare to write n bytes: erase; returns the minimum write size
        n = args[1]
        if n > len(rom):
            return _EINVAL
        f = _vboard.ROMFS_FILE
        f.seek(0)
        # erased in 4 KiB pieces: one bytes(n) of a whole image needs a contiguous block as
        # large as the image, which a running firmware's heap may not have
        z = bytes(4096)
        off = 0
        while off < n:
            k = min(4096, n - off)
            f.write(z if k == 4096 else z[:k])
            off += k
        f.flush()
        return 4
    if op == 4:   # write buf at offset
        off, buf = args[1], args[2]
        if off < 0 or off + len(buf) > len(rom):
            return _EINVAL
        rom[off:off + len(buf)] = buf
        f = _vboard.ROMFS_FILE
        f.seek(off)
        f.write(buf)
        return 0
    if op == 5:   # write complete
        _vboard.ROMFS_FILE.flush()
        return 0
    return _EINVAL
