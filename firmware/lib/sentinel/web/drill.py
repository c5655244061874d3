"""The one state change a browser may ask for, POST /drill, and who may ask for it.

Who may: a NUT user (nut.users) whose password matches, with the `primary` role (a primary may
already raise FSD, which a drill rehearses) or the instant-command right to the drill
(`actions` holding INSTCMD, or `instcmds` naming sentinel.drill.start, sentinel.drill.stop or
ALL). A `secondary` user is only what a server's upsmon needs, so it may not.

The drill is requested exactly as the console and NUT's `sentinel.drill.start/stop` instant
commands request it: a command in the control loop's queue, refused where the state machine
would refuse it. Imported by the server for a login (login()) and by the site for a drill
request or a credentials check, and dropped after each (device heap: a drill is rare).
"""
from sentinel.nut.auth import check_password
from sentinel.web.fmt import esc

HTML = "text/html; charset=utf-8"
# compared against when the user name is unknown, so that a wrong name costs the same time as a
# wrong password (the salt and digest are arbitrary)
_NOBODY = "sha256$nobody$" + "0" * 64
_DRILL_CMDS = ("ALL", "sentinel.drill.start", "sentinel.drill.stop")


async def login(srv, addr, p, right, resp):
    """For WebServer `srv`, a request from `addr` (p: its parser) to a route needing `right`:
    (addr, user) when its credentials hold it; else answers 401 or 403 and returns None.
    Failures are delayed per address by the server's limiter."""
    import asyncio

    from sentinel.web.http import basic_credentials  # loaded while p is in use
    creds = basic_credentials(p.headers.get("authorization"))
    user = None
    ok = None
    if creds is not None:
        user = creds[0]
        d = srv.limiter.delay_ms(addr, srv.now_ms())
        if d:
            await asyncio.sleep_ms(d)
        ok = srv.site.allowed(user, creds[1], right)
        if ok is None:
            srv.limiter.failed(addr, srv.now_ms())
            srv._count("auth_failed")
        else:
            srv.limiter.succeeded(addr, srv.now_ms())
    if ok is None:
        await resp.send(401, "text/plain", "login needed: a NUT user of this sentinel\n",
                        (("WWW-Authenticate", 'Basic realm="Power Sentinel", charset="UTF-8"'),))
        return None
    if not ok:
        await resp.send(403, "text/plain", "this user may not do that\n")
        return None
    return addr, user


def allowed(users, user, password, right):
    """users: the config's nut.users. None when the credentials are wrong; else whether `user`
    holds `right` ("drill")."""
    u = None
    for x in users:
        if x["name"] == user:
            u = x
    if not check_password(_NOBODY if u is None else u["password"], password) or u is None:
        return None
    if right != "drill":
        return False
    if u["role"] == "primary" or "INSTCMD" in u["actions"]:
        return True
    for c in u.get("instcmds") or ():
        if c in _DRILL_CMDS:
            return True
    return False


async def drill(site, req, resp, who):
    """The POST /drill handler for Site `site` (req: the request's parser, which keeps
    sentinel.web.http loaded)."""
    from sentinel.web.http import parse_form
    action = parse_form(req.body).get("action", "start")
    if action not in ("start", "stop"):
        await resp.send(400, HTML, message(site.name, 400, "action must be start or stop"))
        return
    cmd = "drill" if action == "start" else "drill_stop"
    sm = site.ops.sm
    if sm.allowed(cmd):
        site.ops.commands.append(cmd)
        code = 200
        text = "Drill %s requested by %s." % ("start" if cmd == "drill" else "stop", who[1])
    else:
        code = 409
        text = ("A drill cannot start now (state %s%s)." % (
            sm.state, ", a drill already runs" if sm.drill else "") if cmd == "drill"
            else "No drill is running.")
    site.rt.log("web_drill", {"action": action, "user": who[1], "addr": who[0],
                              "result": "ok" if code == 200 else "refused"}, critical=True)
    await resp.send(code, HTML, message(site.name, code, text))


def message(site, code, text):
    """A small page answering a form (drill) or an error, back to / after 3 s."""
    from sentinel.web.page import _CSS  # the page's style (the caller drops the module)
    return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv='
            '"refresh" content="3;url=/"><title>%s</title><style>%s</style></head><body><main>'
            '<section class="w"><h2>%d</h2><p id="message">%s</p><a href="/">Back</a>'
            '</section></main></body></html>\n') % (esc(site), _CSS, code, esc(text))
