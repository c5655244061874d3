# CPython launcher of the virtual board's interpreter. It maps the board's ROMFS partition into
# memory outside MicroPython's GC heap (ctypes), as a board memory-maps its flash, so modules in
# it run in place instead of being copied into the heap; then it runs the MicroPython unix port.
# Usage: python launch.py ROMFS_IMAGE PARTITION_BYTES micropython-args...
import ctypes
import os
import sys


def main():
    path, size = sys.argv[1], int(sys.argv[2])
    buf = ctypes.create_string_buffer(size)
    try:
        with open(path, "rb") as f:
            data = f.read(size)
        ctypes.memmove(buf, data, len(data))
    except FileNotFoundError:
        pass
    os.environ["PSV_ROMFS"] = "%d:%d:%s" % (ctypes.addressof(buf), size, path)
    import micropython_unix
    sys.argv = ["micropython"] + sys.argv[3:]
    return micropython_unix.main()


if __name__ == "__main__":
    sys.exit(main())
