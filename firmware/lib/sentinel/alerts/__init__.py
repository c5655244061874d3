"""Alerts: the sentinel tells people and their tools itself (syslog, MQTT, webhook, e-mail).

The contract every part of this package keeps:

An alert is a dict built from one journal record, so the journal is the store-and-forward queue
(on flash, in order, across reboots) and the record's sequence number is the alert's id:
    {"id": int,        journal seq: unique, increasing, survives reboots; receivers drop
                       duplicates by it (delivery is at least once, so exactly once after dedupe)
     "ts": int,        epoch seconds of the record (0 when the RTC was not set)
     "site": str,      the sentinel's configured name
     "kind": str,      the record type ("state", "mains_lost", ...)
     "severity": str,  an RFC 5424 name: "emerg" "alert" "crit" "err" "warning" "notice" "info"
     "text": str,      one line for a person
     "data": dict}     the record's fields

A transport is a module of this package holding `Transport`, built once from its validated
config section:
    Transport(cfg, site)        cfg: the section dict (validated, defaults filled); site: name
    await t.send(alert)         returns once the receiver has accepted the alert; raises OSError
                                or asyncio.TimeoutError for a failure worth retrying, Rejected for
                                one that retrying cannot mend (the alert is then logged as
                                rejected and skipped); never blocks the event loop
    await t.close()             drops the connection, if any
Transports are imported only when configured (device heap); most are imported for one send and
forgotten after it (outbox.KEPT says which stay).
"""


def forget(name):
    """Forget module sentinel.alerts.<name>, imported for one job: the module table and this
    package both hold it, so the next collection frees it. A caller still using it keeps its
    own reference; the next import loads it afresh."""
    import sys
    sys.modules.pop("sentinel.alerts." + name, None)
    pkg = sys.modules.get("sentinel.alerts")
    if pkg is not None and name in pkg.__dict__:
        delattr(pkg, name)


class Rejected(Exception):
    """The receiver refused the alert for good (HTTP 4xx, SMTP 5xx): retrying cannot help."""
