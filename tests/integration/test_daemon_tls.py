"""`Protocol: https` serves the API over TLS (a real twistd node, a self-signed certificate
made for the test, clients that trust only that certificate)."""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from treq.client import HTTPClient
from twisted.internet import reactor, ssl
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

from .daemon import Daemon, ExitStatus


def self_signed(directory: str) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as PEM files in C{directory}."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class TLSDaemon(Daemon):
    """A node whose API is https, and a client that trusts only the test's certificate."""

    def __init__(self, testcase: TestCase) -> None:
        directory = os.path.abspath(testcase.mktemp())
        os.makedirs(directory)
        self.cert_path, key_path = self_signed(directory)
        super().__init__(testcase, {"Protocol": "https", "Host": "127.0.0.1",
                                    "TLSCertFile": self.cert_path, "TLSKeyFile": key_path})
        self.base_url = f"https://127.0.0.1:{self.port}"

    def http(self) -> HTTPClient:
        if self._http is None:
            with open(self.cert_path, "rb") as f:
                trust = ssl.Certificate.loadPEM(f.read())
            self._pool = HTTPConnectionPool(reactor, persistent=False)
            policy = BrowserLikePolicyForHTTPS(trustRoot=trust)
            self._http = HTTPClient(Agent(reactor, contextFactory=policy, pool=self._pool,
                                          connectTimeout=5))
        return self._http


class TLSTests(TestCase):
    async def test_api_over_https(self) -> None:
        node = TLSDaemon(self)
        await node.start()  # the healthcheck answered over verified TLS
        credential = await node.create_credential("--cafile", node.cert_path)
        client = node.client(credential)
        project = await client.ok("POST", "/projects", {"name": "tls"}, expect=201)
        self.assertEqual(project["name"], "tls")
        # the CLI refuses a server it cannot verify (no --cafile): no silent downgrade
        status, out, err = await node.cli("create", "credential", "--config", node.config_path)
        self.assertFalse(status.clean, out + err)
        self.assertEqual(out, "")
        self.assertEqual(await node.stop(), ExitStatus(0, None))
