"""The sentinel's web side: a status page at `/`, Prometheus metrics at `/metrics`, and the one
state change a browser may ask for (`POST /drill`, behind HTTP Basic auth).

    http     request parsing (bounded), Basic credentials, form bodies: pure (imported per
             request, dropped once the request is read)
    server   WebServer: the asyncio HTTP/1.0-1.1 server (connection cap, a deadline on every
             read and write, never blocks the loop) dispatching through a route table; the
             response head; a response streamed through one 512-byte buffer
    site     Site: the route table and its handlers, reading Ops.status() and the journal
    drill    POST /drill, the login check and who may ask for it (imported per request)
    page, page1, page2, fmt
             the status page as server-rendered HTML (no scripts, no external assets), in three
             parts imported one after the other per request, and their text helpers
    metrics  the Prometheus text exposition format 0.0.4 (imported per request)

Everything comes from what the console's `status` op and the journal already hold: the web side
computes nothing of its own. The composition root imports this package only when the config's
`http.enabled` is true (device heap: boards without ROMFS hold every module's bytecode in RAM),
and starts the server once the network is up, as NUT's.
"""
