"""Loopback TLS sites and the real prober for the TLS probe tests: a test CA (trustme) with an
intermediate, certificates that are valid, expiring, expired, self-signed (cryptography), for the wrong
name or served without their intermediate, HTTPS / plain-TCP-TLS / plain-HTTP servers on 127.0.0.1 that
present them, and the real blackbox_exporter and Prometheus started on loopback ports."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import socketserver
import ssl
import time
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from helpers.servers import free_port, process, serving

HOST = "localhost"  # /etc/hosts: 127.0.0.1; the certificates name it, the probes use it as target


@dataclass(frozen=True)
class Pki:
    root: trustme.CA
    intermediate: trustme.CA

    def write_root(self, path: Path) -> Path:
        self.root.cert_pem.write_to_path(str(path))
        return path


def make_pki() -> Pki:
    root = trustme.CA(organization_name="borgwatch test root")
    return Pki(root, root.create_child_ca())


@dataclass(frozen=True)
class CertFiles:
    chain: Path  # leaf first, then what the server sends along
    key: Path


def issue(pki: Pki, d: Path, name: str, *, days: float = 90, hostname: str = HOST,
          with_intermediate: bool = True) -> CertFiles:
    """A leaf from the intermediate, valid for ``days`` more (negative: expired that long ago)."""
    now = datetime.now(UTC)
    not_after = now + timedelta(days=days)
    leaf = pki.intermediate.issue_cert(hostname, not_before=min(now, not_after) - timedelta(days=30),
                                       not_after=not_after)
    blobs = leaf.cert_chain_pems if with_intermediate else leaf.cert_chain_pems[:1]
    chain, key = d / f"{name}.pem", d / f"{name}.key"
    chain.write_bytes(b"".join(blob.bytes() for blob in blobs))
    leaf.private_key_pem.write_to_path(str(key))
    return CertFiles(chain, key)


def self_signed(d: Path, name: str, hostname: str = HOST) -> CertFiles:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    files = CertFiles(d / f"{name}.pem", d / f"{name}.key")
    files.chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return files


def server_context(cert: CertFiles, *, legacy: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert.chain), str(cert.key))
    if legacy:
        # OpenSSL 3 refuses TLS 1.0 below security level 0 (SHA-1 signatures)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # deprecated is the point of this server
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.server.delay:
            time.sleep(self.server.delay)
        if self.server.redirect:
            self.send_response(301)
            self.send_header("Location", self.server.redirect)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    delay = 0.0
    redirect = ""
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = super().get_request()
        if self.tls is not None:
            sock.settimeout(10)
            # the handshake happens in the handler thread (do_handshake_on_connect on first read)
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # failed handshakes are what half of the cases are about


class _TLSEcho(socketserver.ThreadingTCPServer):
    """A non-HTTP TLS service: handshake, greet, close."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.tls = ctx
        super().__init__(("127.0.0.1", 0), _TLSGreet)

    def handle_error(self, request: object, client_address: object) -> None:
        pass


class _TLSGreet(socketserver.BaseRequestHandler):
    server: _TLSEcho

    def handle(self) -> None:
        self.request.settimeout(10)
        with self.server.tls.wrap_socket(self.request, server_side=True) as tls:
            tls.sendall(b"* OK borgwatch test service\r\n")


class Servers:
    """Starts loopback servers; all of them stop when the ``servers()`` block ends."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack

    def _serve(self, server: socketserver.BaseServer) -> int:
        return self._stack.enter_context(serving(server))

    def https(self, ctx: ssl.SSLContext, delay: float = 0.0) -> str:
        server = _HTTPServer(("127.0.0.1", 0), _Handler)
        server.tls, server.delay = ctx, delay
        return f"https://{HOST}:{self._serve(server)}/"

    def http(self, redirect: str = "") -> str:
        server = _HTTPServer(("127.0.0.1", 0), _Handler)
        server.redirect = redirect
        return f"http://{HOST}:{self._serve(server)}/"

    def tls_service(self, ctx: ssl.SSLContext) -> str:
        return f"{HOST}:{self._serve(_TLSEcho(ctx))}"


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    with contextlib.ExitStack() as stack:
        yield Servers(stack)


BLACKBOX = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
PROMETHEUS = shutil.which("prometheus")


@contextlib.contextmanager
def blackbox_exporter(config: Path, trusted_ca: Path, tmp: Path) -> Iterator[str]:
    """The real exporter with the kit's modules; it trusts the system store replaced by the test root
    (Go's crypto/x509 reads SSL_CERT_FILE), so the kit file needs no test-only ca_file. Yields its URL."""
    assert BLACKBOX is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [BLACKBOX, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"]
    with process(argv, f"{url}/-/healthy", tmp / "blackbox.log", {"SSL_CERT_FILE": str(trusted_ca)}):
        yield url


def probe(exporter: str, module: str, target: str) -> str:
    query = urllib.parse.urlencode({"module": module, "target": target})
    with urllib.request.urlopen(f"{exporter}/probe?{query}", timeout=30) as resp:
        return resp.read().decode()


@contextlib.contextmanager
def prometheus(config: str, tmp: Path) -> Iterator[str]:
    """The real Prometheus with ``config`` (storage in ``tmp``); yields its URL."""
    assert PROMETHEUS is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (tmp / "prometheus.yml").write_text(config)
    argv = [PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}"]
    with process(argv, f"{url}/-/ready", tmp / "prometheus.log"):
        yield url


def api(base: str, path: str, **params: str) -> object:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{base}/api/v1/{path}{query}", timeout=30) as resp:
        doc = json.load(resp)
    assert doc["status"] == "success", doc
    return doc["data"]
