"""`powersentinel alerts test`: fire a test alert on the board and follow its delivery through
every enabled transport, by polling the console status (its `alerts` block)."""
import time

from .errors import PowerSentinelError


class AlertsError(PowerSentinelError):
    """The board has no alerts configured, or answers without an alerts block."""


def fire_test(link, timeout=30.0, progress=None, poll_s=0.3, clock=time.monotonic):
    """Append an alert_test record on the board, then wait until every enabled transport has
    delivered it or `timeout` seconds have passed. progress(name, done) is called as each
    transport delivers (done True) or turns out unable to send (done False). Returns
    (alert id, {transport: (delivered, its last error or None)})."""
    try:
        r = link.request("alerts_test")
    except PowerSentinelError as e:
        if "no alert transport" in str(e):
            raise AlertsError("no alert transport is enabled on the board: set "
                              "alerts.<transport>.enabled = true in the site file and push it "
                              "(`powersentinel config push`)") from None
        raise
    aid = r["id"]
    names = list(r.get("transports") or [])
    done = {}     # name -> True (delivered) or False (cannot send at all)
    errors = {}
    deadline = clock() + timeout
    while True:
        st = link.request("status").get("alerts")
        if st is None:
            raise AlertsError("the board's status has no alerts block (old firmware?)")
        tr = st.get("transports", {})
        for name in names:
            t = tr.get(name, {})
            errors[name] = t.get("error")
            if name in done:
                continue
            if (t.get("delivered") or 0) >= aid:
                done[name] = True
            elif t.get("ok") is False:  # the board could not build it: no use waiting
                done[name] = False
            else:
                continue
            if progress is not None:
                progress(name, done[name])
        if len(done) == len(names) or clock() > deadline:
            break
        time.sleep(poll_s)
    return aid, {n: (done.get(n) is True,
                     None if done.get(n) else errors.get(n) or "not delivered in time")
                 for n in names}
