"""A certificate authority per environment, kept in secrets/<env>.yaml (age-encrypted key).

`keel ca init <env>` makes it; the edge role issues certificates for private names and
addresses from it on the controller. The CA key is only ever decrypted in memory here.
"""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keel.core import store
from keel.errors import KeelError

KEY, CERT = "ca_key", "ca_cert"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def init(env: str, days: int = 3650, force: bool = False) -> str:
    """Create the environment's CA; returns its certificate (PEM)."""
    if KEY in store.names(env) and not force:
        raise KeelError(f"environment {env} already has a CA ({KEY} in secrets/{env}.yaml); "
                        "--force replaces it (every issued certificate is then re-issued)")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"keel {env} CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    store.put(env, KEY, _pem_key(key).decode())
    store.put(env, CERT, pem)
    return pem


def ensure(env: str) -> str:
    """The environment's CA certificate, creating the CA if it has none."""
    return cert(env) if CERT in store.names(env) else init(env)


def cert(env: str) -> str:
    """The CA certificate (PEM); public."""
    if CERT not in store.names(env):
        raise KeelError(f"environment {env} has no CA: run `keel ca init {env}`")
    return store.value(env, CERT)


def issue(env: str, names: list[str], addresses: list[str] = (), days: int = 90
          ) -> tuple[bytes, bytes]:
    """A new key and a certificate for these DNS names and IP addresses: (key PEM, cert PEM)."""
    ca_cert = x509.load_pem_x509_certificate(cert(env).encode())
    ca_key = serialization.load_pem_private_key(store.value(env, KEY).encode(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(n) for n in names] + \
        [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                        (list(names) or list(addresses))[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_cert.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return _pem_key(key), leaf.public_bytes(serialization.Encoding.PEM)
