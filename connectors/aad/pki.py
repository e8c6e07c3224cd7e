"""A throwaway certificate authority for the loopback simulators.

azure-identity refuses any authority that is not ``https`` (``normalize_authority``), so the
Entra ID token endpoint simulator must speak TLS, and a client must trust it the way it would
trust a private endpoint in production: through a CA bundle file (``ca_bundle`` in
``[sources.<name>]``, handed to azure-identity as ``connection_verify`` and to httpx as an
``ssl.SSLContext``). This module makes that CA when a simulator starts: a self-signed root, a
server certificate for ``127.0.0.1``/``localhost`` and, for the certificate credential, a client
certificate — all written to a temporary directory that :meth:`ThrowawayPKI.cleanup` removes.
Nothing here is used against a real tenant.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate for azure-identity's CertificateCredential (PEM: key + cert)."""

    path: Path  # private key and certificate in one PEM file, as CertificateCredential reads it
    certificate: x509.Certificate

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        key = self.certificate.public_key()
        assert isinstance(key, rsa.RSAPublicKey)
        return key


class ThrowawayPKI:
    """A root CA and a ``127.0.0.1``/``localhost`` server certificate in a temporary directory."""

    def __init__(self, common_name: str = "reportbot sandbox CA") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="reportbot-pki-"))
        now = dt.datetime.now(dt.UTC)
        self._not_before = now - dt.timedelta(minutes=5)
        self._not_after = now + dt.timedelta(days=2)
        self._ca_key = _key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._ca_key.public_key()), critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca_path = self.dir / "ca.pem"
        self.ca_path.write_bytes(_pem_cert(self.ca))

        server_key = _key()
        server = (
            self._issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), server_key)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        self.server_cert_path = self.dir / "server.pem"
        self.server_key_path = self.dir / "server.key"
        self.server_cert_path.write_bytes(_pem_cert(server))
        self.server_key_path.write_bytes(_pem_key(server_key))
        self.server_key_path.chmod(0o600)

    def _issue(self, subject: x509.Name, key: rsa.RSAPrivateKey) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()), critical=False
            )
        )

    def client_certificate(self, name: str = "reportbot") -> ClientCertificate:
        """A certificate an app registration could hold as its credential (PEM: key + cert)."""
        key = _key()
        cert = (
            self._issue(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        path = self.dir / f"{name}-client.pem"
        path.write_bytes(_pem_key(key) + _pem_cert(cert))
        path.chmod(0o600)
        return ClientCertificate(path, cert)

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.server_cert_path, self.server_key_path)
        return ctx

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
