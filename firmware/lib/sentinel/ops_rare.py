"""The rarely used console operations: a config push (chunks into an upload file, then a
commit that checks length and SHA-256, validates and installs the config and reboots) and
reading a waveform capture in chunks.

sentinel.ops imports this module for one request and forgets it after; it keeps no state of its
own (the upload offset lives on the Ops object).
"""
import asyncio
import binascii
import hashlib
import json
import os

from sentinel.runtime import drop_validator

CHUNK_MAX = 2048
CAPTURE_CHUNK_MAX = 1536


def config_put_chunk(ops, req):
    off = req.get("offset")
    text = req.get("text")
    if not isinstance(off, int) or not isinstance(text, str) or len(text) > CHUNK_MAX:
        raise ValueError("config_put_chunk needs offset (int) and text (str, <= 2048)")
    if off == 0:
        ops.upload = 0
        mode = "w"
    elif ops.upload != off:
        raise ValueError("chunk at %d, expected %s: restart the upload" % (off, ops.upload))
    else:
        mode = "a"
    with open(ops.rt.files["upload"], mode) as f:
        f.write(text)
    ops.upload = off + len(text)
    return {"received": ops.upload}


def config_put_commit(ops, req):
    # the validator and its schema tables are loaded for this commit only: saves device heap
    from sentinel import config

    rt = ops.rt
    path = rt.files["upload"]
    if ops.upload is None:
        raise ValueError("no config upload in progress")
    with open(path) as f:
        text = f.read()
    ops.upload = None
    digest = binascii.hexlify(hashlib.sha256(text.encode()).digest()).decode()
    if len(text) != req.get("length") or digest != req.get("sha256"):
        raise ValueError("config upload damaged (length or sha256 mismatch): nothing changed")
    try:
        obj = json.loads(text)
    except ValueError:
        raise ValueError("config is not valid JSON: nothing changed")
    errors = config.save(obj, rt.files["config"])
    del config
    drop_validator()
    try:
        os.remove(path)
    except OSError:
        pass
    if errors:
        raise ValueError("config refused, nothing changed: " + "; ".join(errors))
    rt.log("config", {"installed": True}, critical=True)
    # apply by rebooting: every task restarts from the new config, as after a power cycle
    asyncio.create_task(ops.reboot())
    return {"installed": True, "rebooting": True}


def capture_read(ops, req):
    cid = req.get("capture_id")  # "id" is the request's own id
    off = int(req.get("offset", 0))
    n = min(int(req.get("length", CAPTURE_CHUNK_MAX)), CAPTURE_CHUNK_MAX)
    from sentinel.journalread import read_capture

    c = read_capture(ops.rt.journal, cid)
    if c is None:
        raise ValueError("no capture %r" % (cid,))
    meta, data = c
    chunk = data[off:off + n]
    return {"meta": meta, "total": len(data),
            "data_b64": binascii.b2a_base64(chunk).decode().strip()}
