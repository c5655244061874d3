# MicroPython code (the virtual board's "ROM"): a block device over the flash image file, with
# the extended interface littlefs needs (offset writes, erase). Each write goes straight to the
# file, so a killed interpreter loses only what a power cut would lose on a real board.
BLOCK_SIZE = 4096


class FileBlockDev:
    def __init__(self, f, block_size=BLOCK_SIZE):
        self.f = f
        self.bs = block_size
        f.seek(0, 2)
        self.count = f.tell() // block_size
        self.writes = 0  # block programs
        self.erases = 0

    def readblocks(self, n, buf, off=0):
        self.f.seek(n * self.bs + off)
        self.f.readinto(buf)

    def writeblocks(self, n, buf, off=None):
        # littlefs calls ioctl(6) (erase) before programming a block, and then writes with an
        # offset; the basic interface (off None) writes whole blocks.
        self.f.seek(n * self.bs + (off or 0))
        self.f.write(buf)
        self.f.flush()
        self.writes += 1

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.count
        if op == 5:  # block size
            return self.bs
        if op == 6:  # erase: littlefs tolerates stale data, so just count it (flash wear figure)
            self.erases += 1
            return 0
        return 0 if op in (1, 2, 3) else None
