"""The one state change a browser may ask for, POST /drill, and who may ask for it.

Who may: a NUT user (nut.users) whose password matches, with the `primary` role (a primary may
already raise FSD, which a drill rehearses) or the instant-command right to the drill
(`actions` holding INSTCMD, or `instcmds` naming sentinel.drill.start, sentinel.drill.stop or
ALL). A `secondary` user is only what a server's upsmon needs, so it may not.

The drill is requested exactly as the console and NUT's `sentinel.drill.start/stop` instant
commands request it: a command in the control loop's queue, refused where the state machine
would refuse it. Imported by the site for a drill request or a login check and dropped after it
(device heap: a drill is rare).
"""
from sentinel.nut.auth import check_password
from sentinel.web.fmt import esc

HTML = "text/html; charset=utf-8"
# compared against when the user name is unknown, so that a wrong name costs the same time as a
# wrong password (the salt and digest are arbitrary)
_NOBODY = "sha256$nobody$" + "0" * 64
_DRILL_CMDS = ("ALL", "sentinel.drill.start", "sentinel.drill.stop")


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
