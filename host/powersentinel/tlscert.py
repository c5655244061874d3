"""The NUT server's TLS certificate and key, as `config push` installs them: PEM files on the
host, checked here, DER in base64 in the device config (nut.tls_cert, nut.tls_key).

Checks (with the `openssl` command line, present wherever OpenSSL is): the certificate parses
and has not expired, the key parses, is not encrypted and is of a kind the device's mbedtls
serves (RSA or ECDSA; not Ed25519/Ed448), and the key belongs to the certificate (the device
cannot tell: a mismatched pair would only fail every handshake). The key file must not be
readable by group or others, as ssh insists for its keys.

    cert_b64, key_b64 = tlscert.load_pair("sentinel.pem", "sentinel.key")  # TlsCertError

The device gets DER because the unix port's mbedtls refuses PEM keys and DER is the smaller
form for the heap while mbedtls parses it.
"""
import base64
import os
import shutil
import stat
import subprocess

from .errors import PowerSentinelError


class TlsCertError(PowerSentinelError):
    """A certificate or key that config push will not install; the message says why."""


def _openssl(args, what, path):
    exe = shutil.which("openssl")
    if exe is None:
        raise TlsCertError("checking %s needs the openssl command (apt install openssl)" % what)
    # -passin with an empty password: an encrypted key fails instead of prompting
    r = subprocess.run([exe] + args, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        err = r.stderr.decode("latin-1", "replace").strip().splitlines()
        raise TlsCertError("%s: not a usable %s (%s)" % (path, what, err[0] if err else "openssl failed"))
    return r.stdout


def _readable(path, what):
    if not os.path.isfile(path):
        raise TlsCertError("%s: no such %s file" % (path, what))


def load_cert(path):
    """(DER bytes, public key PEM) of a PEM (or DER) certificate that has not expired."""
    _readable(path, "certificate")
    der = _openssl(["x509", "-in", path, "-outform", "DER"], "certificate", path)
    try:
        _openssl(["x509", "-in", path, "-noout", "-checkend", "0"], "certificate", path)
    except TlsCertError:
        end = _openssl(["x509", "-in", path, "-noout", "-enddate"], "certificate", path)
        raise TlsCertError("%s: certificate expired (%s)" % (path, end.decode().strip()))
    pub = _openssl(["x509", "-in", path, "-noout", "-pubkey"], "certificate", path)
    return der, pub


def load_key(path):
    """(DER bytes (PKCS#8), public key PEM) of an unencrypted RSA or EC private key."""
    _readable(path, "key")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        raise TlsCertError("%s: the private key is readable by others (mode %04o): chmod 600 %s"
                           % (path, mode, path))
    der = _openssl(["pkey", "-in", path, "-passin", "pass:", "-outform", "DER"], "private key "
                   "(unencrypted PEM)", path)
    text = _openssl(["pkey", "-in", path, "-passin", "pass:", "-noout", "-text"], "private key",
                    path).decode("latin-1")
    first = text.splitlines()[0] if text else ""
    if "ED25519" in first.upper() or "ED448" in first.upper():
        raise TlsCertError("%s: %s keys cannot be served by the device's mbedtls: use ECDSA "
                           "P-256 or RSA" % (path, first.split()[0]))
    pub = _openssl(["pkey", "-in", path, "-passin", "pass:", "-pubout"], "private key", path)
    return der, pub


def load_pair(cert_path, key_path):
    """(cert base64, key base64): the DER the device config carries, for a checked pair."""
    cder, cpub = load_cert(cert_path)
    kder, kpub = load_key(key_path)
    if cpub.strip() != kpub.strip():
        raise TlsCertError("%s does not belong to the certificate %s" % (key_path, cert_path))
    return base64.b64encode(cder).decode(), base64.b64encode(kder).decode()
