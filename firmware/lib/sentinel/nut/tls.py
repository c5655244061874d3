"""NUT over TLS (STARTTLS, as upsd does it): the server certificate and key, and the upgrade of
one connection's socket to TLS in the middle of the NUT exchange.

server.py imports this module only when nut.tls_cert is set: the ssl module and this code stay
out of the heap of a sentinel that does not use TLS (boards without ROMFS hold every imported
module's bytecode in RAM).

Contract:
  Tls(cert_b64, key_b64, handshake_ms)   raises ValueError with a one-line reason when the
                                         certificate or key cannot be used (not base64, not
                                         DER, key does not match, no ssl module on this port)
  .upgrade(stream)         wraps the asyncio stream's socket in a server-side TLS socket, in
                           place; the handshake runs inside the stream's next reads, which the
                           caller bounds by .handshake_ms. Never blocks: the socket stays
                           non-blocking, as asyncio.start_server(ssl=) does it.
  .note(addr, result) -> bool
                           whether a handshake result is worth a journal record: a repeat of
                           the previous (addr, result) is not (a client that fails over and
                           over must not wear the flash); the server counts every one anyway.
"""
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


class Tls:
    def __init__(self, cert_b64, key_b64, handshake_ms):
        if ssl is None or not hasattr(ssl, "SSLContext"):
            raise ValueError("this MicroPython port has no ssl module: NUT stays plain text")
        if not key_b64:
            raise ValueError("nut.tls_cert is set but nut.tls_key is empty")
        self.handshake_ms = handshake_ms
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

    def upgrade(self, stream):
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
        ts = self.ctx.wrap_socket(s, server_side=True, do_handshake_on_connect=False)
        ts.setblocking(False)
        stream.s = ts

    def note(self, addr, result):
        key = (addr, result)
        if key == self._last:
            return False
        self._last = key
        return True
