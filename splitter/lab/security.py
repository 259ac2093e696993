"""The lab's secrets: a keyFile, the admin user's name and password, a self-signed CA and server certificate.

Every secret is written to a file of its own (0600, the keyFile 0400) in a 0700 directory and only ever
passed by path: never on a command line, in an environment variable, the inventory or split.yaml.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ADMIN_USER = "splitter-admin"
# root cannot update or delete local.system.replset on a standalone started with authorization
# (measured on 6.0.5: find and insert pass, update and remove are refused); the rewrite step does both.
REPLSET_ROLE = "splitterReplsetConfig"
REPLSET_ROLE_PRIVILEGES = [{"resource": {"db": "local", "collection": "system.replset"},
                            "actions": ["find", "insert", "update", "remove"]}]
ADMIN_ROLES = ["root", REPLSET_ROLE]


def write_private(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    """Create path with `mode` from the start (no window with wider permissions); replaces an old file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


@dataclass(frozen=True)
class LabSecrets:
    """Where the secrets of the lab in `root` live (they may not exist yet)."""

    root: Path

    @property
    def dir(self) -> Path:
        return self.root / "secrets"

    @property
    def keyfile(self) -> Path:
        return self.dir / "keyfile"

    @property
    def username_file(self) -> Path:
        return self.dir / "username"

    @property
    def password_file(self) -> Path:
        return self.dir / "password"

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def server_pem(self) -> Path:
        return self.dir / "server.pem"

    def ensure_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)

    def create_keyfile(self) -> None:
        # mongod accepts only base64 characters (no '-' or '_') and a file nobody else can read.
        self.ensure_dir()
        write_private(self.keyfile, base64.b64encode(secrets.token_bytes(96)).decode() + "\n", 0o400)

    def create_password(self) -> None:
        self.ensure_dir()
        write_private(self.username_file, ADMIN_USER)
        write_private(self.password_file, secrets.token_urlsafe(32))

    def key(self) -> str:
        return self.keyfile.read_text().strip()

    def username(self) -> str:
        return self.username_file.read_text().strip()

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def create_tls(self) -> None:
        """A self-signed CA and one certificate for 127.0.0.1/localhost (server and intra-cluster client)."""
        self.ensure_dir()
        ca_pem, server_pem = make_certificates()
        write_private(self.ca_file, ca_pem)
        write_private(self.server_pem, server_pem)


def make_certificates(days: int = 30) -> tuple[bytes, bytes]:
    """(CA certificate PEM, server certificate + key PEM) made with the `cryptography` package."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:  # pragma: no cover - ansible-core depends on cryptography
        from splitter.errors import BadInput

        raise BadInput("lab --tls needs the `cryptography` package", hint="pip install cryptography") from exc

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "splitter lab"),
                          x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("splitter lab CA")
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca_name)
        .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        # mongod also presents this certificate when it connects to the other members.
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca_cert.public_bytes(pem), server_cert.public_bytes(pem) + key_pem


@dataclass(frozen=True)
class LabSecurity:
    """Auth (keyFile + SCRAM admin user) and TLS settings of one lab, and the client options they imply."""

    root: Path
    auth: bool = False
    tls: bool = False

    @property
    def files(self) -> LabSecrets:
        return LabSecrets(self.root)

    def create_files(self) -> None:
        """keyFile, user name, password and certificates, as the flags ask. Called once, by `lab up`."""
        if self.auth:
            self.files.create_keyfile()
            self.files.create_password()
        if self.tls:
            self.files.create_tls()

    def inventory_vars(self) -> dict[str, str]:
        """Paths only: the templates put them in mongod.conf."""
        result = {}
        if self.auth:
            result["mongod_keyfile"] = str(self.files.keyfile)
        if self.tls:
            result.update(mongod_tls_pem=str(self.files.server_pem), mongod_tls_ca=str(self.files.ca_file))
        return result

    def credentials_config(self) -> dict[str, dict[str, str]]:
        """split.yaml's `credentials:` (file names, never the secrets themselves)."""
        creds = {}
        if self.auth:
            creds.update(username_file=str(self.files.username_file), password_file=str(self.files.password_file),
                         auth_source="admin")
        if self.tls:
            creds["tls_ca_file"] = str(self.files.ca_file)
        return {"credentials": creds} if creds else {}

    def tls_options(self) -> dict[str, object]:
        return {"tls": True, "tlsCAFile": str(self.files.ca_file)} if self.tls else {}

    def client_options(self, *, system: bool = False) -> dict[str, object]:
        """pymongo options: TLS, and the admin user (or, with system=True, the keyFile's __system user, which
        the lab needs only before the admin user exists and for arbiters, which hold no users)."""
        options = self.tls_options()
        if self.auth:
            if system:
                options.update(username="__system", password=self.files.key(), authSource="local")
            else:
                options.update(username=self.files.username(), password=self.files.password(), authSource="admin")
        return options
