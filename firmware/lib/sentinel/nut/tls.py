"""NUT over TLS (STARTTLS, as upsd does it): the server certificate and key, and the upgrade of
one connection's socket to TLS in the middle of the NUT exchange.

server.py imports this module only when nut.tls_cert is set: the ssl module and this code stay
out of the heap of a sentinel that does not use TLS (boards without ROMFS hold every imported
module's bytecode in RAM).

Contract:
  Tls(cert_b64, key_b64, handshake_ms, on_result=None)
                           raises ValueError with a one-line reason when the certificate or
                           key cannot be used (not base64, not DER, no ssl module on this port);
                           a key that does not match the certificate is only found by the
                           handshakes (config push checks the pair)
  .upgrade(stream, addr) -> the TCP socket, or None
                           wraps the asyncio stream's socket in a server-side TLS socket, in
                           place; None (reported "failed") when there is no memory for it.
                           Never blocks: the socket stays non-blocking, as
                           asyncio.start_server(ssl=) does it
  await .first_read(addr, stream, n) -> bytes | None
                           the first read after the upgrade, which runs the handshake, bounded
                           by handshake_ms: its data, or None when the handshake failed, the
                           peer left, or nothing came in time
  on_result(addr, result)  "ok" | "failed" | "timeout" for each upgrade; a repeat of the
                           previous (addr, result) is not reported (a client that fails over
                           and over must not wear the flash); a failing callback is counted in
                           .errors, never raised
"""
import asyncio
import binascii

try:
    import ssl
except ImportError:  # a port built without mbedtls/axtls: TLS stays off
    ssl = None

_IPPROTO_TCP = 6
_TCP_NODELAY = 1


def _der(b64, what):
    try:
        return binascii.a2b_base64(b64)
    except Exception:
        raise ValueError("nut.%s is not base64 (config push writes DER in base64)" % what)


def _wait_for_ms(aw, ms):
    f = getattr(asyncio, "wait_for_ms", None)  # MicroPython; CPython has only wait_for()
    return f(aw, ms) if f is not None else asyncio.wait_for(aw, ms / 1000)


class Tls:
    def __init__(self, cert_b64, key_b64, handshake_ms, on_result=None):
        if ssl is None or not hasattr(ssl, "SSLContext"):
            raise ValueError("this MicroPython port has no ssl module: NUT stays plain text")
        if not key_b64:
            raise ValueError("nut.tls_cert is set but nut.tls_key is empty")
        self.handshake_ms = handshake_ms
        self.on_result = on_result
        self.errors = 0
        cert = _der(cert_b64, "tls_cert")
        key = _der(key_b64, "tls_key")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            # DER, not PEM: the unix port's mbedtls refuses PEM keys, and DER needs no PEM
            # copy on the heap while it is parsed
            ctx.load_cert_chain(cert, key)
        except Exception as e:
            raise ValueError("nut.tls_cert/tls_key refused by ssl (%s)" % (e,))
        self.ctx = ctx
        self._last = None

    def upgrade(self, stream, addr):
        # MicroPython's Stream is reader and writer at once: swapping its socket upgrades both
        s = stream.s
        try:
            # TCP_NODELAY: mbedtls sends a handshake flight as several small records, which
            # Nagle holds back for the client's delayed ACK (103 -> 28 ms per handshake on the
            # unix port). Numeric: IPPROTO_TCP 6, TCP_NODELAY 1 on Linux and lwIP alike; the
            # unix port's socket module has no names for them, a port that refuses it is fine
            s.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        except Exception:
            pass
        try:
            ts = self.ctx.wrap_socket(s, server_side=True, do_handshake_on_connect=False)
        except Exception:  # MemoryError, or mbedtls out of memory (OSError)
            self.report(addr, "failed")
            return None
        ts.setblocking(False)
        stream.s = ts
        return s

    async def first_read(self, addr, stream, n):
        result = "ok"
        data = None
        try:
            data = await _wait_for_ms(stream.read(n), self.handshake_ms)
            if not data:
                result = "failed"  # the peer gave up (e.g. it refused our certificate)
        except asyncio.TimeoutError:
            result = "timeout"
        except OSError:
            result = "failed"  # mbedtls: bad record, alert, no common cipher...
        self.report(addr, result)
        return data if result == "ok" else None

    def report(self, addr, result):
        key = (addr, result)
        if key == self._last or self.on_result is None:
            return
        self._last = key
        try:
            self.on_result(addr, result)
        except Exception:
            self.errors += 1
