"""RSA keys for the providers, and the development key set the simulators use.

`DevKeys.generate()` makes everything in memory (tests); `DevKeys.load_or_create(dir)`
persists on first use so `make run` keeps the same keys across restarts.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def generate_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def dump_private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def dump_public_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bytes:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _as_bytes(pem: bytes | str) -> bytes:
    return pem.encode() if isinstance(pem, str) else pem


@functools.lru_cache(maxsize=64)
def load_private_key(pem: bytes | str) -> rsa.RSAPrivateKey:
    # Cached: loading checks the key's consistency (~50 ms), and key objects are immutable.
    key = serialization.load_pem_private_key(_as_bytes(pem), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("expected an RSA private key")
    return key


def load_public_key(pem: bytes | str) -> rsa.RSAPublicKey:
    """Accepts a public key PEM or an X.509 certificate (WeChat Pay platform certificates)."""
    data = _as_bytes(pem)
    key: object
    if b"BEGIN CERTIFICATE" in data:
        key = x509.load_pem_x509_certificate(data).public_key()
    else:
        key = serialization.load_pem_public_key(data)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("expected an RSA public key")
    return key


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    public_pem: bytes

    @classmethod
    def generate(cls) -> KeyPair:
        key = generate_private_key()
        return cls(dump_private_pem(key), dump_public_pem(key))


def _serial() -> str:
    # 40 hex digits like WeChat's, below 2**159 so it is a valid X.509 serial too.
    return format(secrets.randbits(159), "040X")


def _apiv3_key() -> bytes:
    # The real APIv3 key is 32 ASCII characters used as the AES-256 key bytes.
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32)).encode("ascii")


_PAIRS = ("merchant", "wechat_platform", "wechat_pubkey", "alipay_app", "alipay_platform")


@dataclass(frozen=True)
class DevKeys:
    """All keys a development setup needs.

    WeChat Pay has two signing identities, as during a real switch: the platform
    certificate key (named by `wechat_platform_serial`) and the newer "WeChat Pay
    public key" (named by `wechat_pub_key_id`, `PUB_KEY_ID_...`). They are
    distinct key pairs so tests can prove the client picks the key by serial.
    """

    merchant: KeyPair
    merchant_serial: str
    wechat_platform: KeyPair
    wechat_platform_serial: str
    wechat_pubkey: KeyPair
    wechat_pub_key_id: str
    alipay_app: KeyPair
    alipay_platform: KeyPair
    apiv3_key: bytes

    @classmethod
    def generate(cls) -> DevKeys:
        return cls(
            merchant=KeyPair.generate(),
            merchant_serial=_serial(),
            wechat_platform=KeyPair.generate(),
            wechat_platform_serial=_serial(),
            wechat_pubkey=KeyPair.generate(),
            wechat_pub_key_id="PUB_KEY_ID_"
            + "".join(secrets.choice(string.digits) for _ in range(32)),
            alipay_app=KeyPair.generate(),
            alipay_platform=KeyPair.generate(),
            apiv3_key=_apiv3_key(),
        )

    def wechat_platform_public_keys(self) -> dict[str, bytes]:
        """serial -> public PEM, the shape `WeChatPayConfig.platform_public_keys` takes."""
        return {
            self.wechat_platform_serial: self.wechat_platform.public_pem,
            self.wechat_pub_key_id: self.wechat_pubkey.public_pem,
        }

    def save(self, directory: str | os.PathLike[str]) -> None:
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        for name in _PAIRS:
            pair: KeyPair = getattr(self, name)
            _write_private(root / f"{name}_private.pem", pair.private_pem)
            (root / f"{name}_public.pem").write_bytes(pair.public_pem)
        ids = {
            "merchant_serial": self.merchant_serial,
            "wechat_platform_serial": self.wechat_platform_serial,
            "wechat_pub_key_id": self.wechat_pub_key_id,
            "apiv3_key": self.apiv3_key.decode("ascii"),
        }
        _write_private(root / "ids.json", json.dumps(ids, indent=2).encode())

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> DevKeys:
        root = Path(directory)
        ids = json.loads((root / "ids.json").read_text())
        pairs = {
            name: KeyPair(
                (root / f"{name}_private.pem").read_bytes(),
                (root / f"{name}_public.pem").read_bytes(),
            )
            for name in _PAIRS
        }
        return cls(
            merchant_serial=ids["merchant_serial"],
            wechat_platform_serial=ids["wechat_platform_serial"],
            wechat_pub_key_id=ids["wechat_pub_key_id"],
            apiv3_key=ids["apiv3_key"].encode("ascii"),
            **pairs,
        )

    @classmethod
    def load_or_create(cls, directory: str | os.PathLike[str]) -> DevKeys:
        if (Path(directory) / "ids.json").exists():
            return cls.load(directory)
        keys = cls.generate()
        keys.save(directory)
        return keys


def _write_private(path: Path, data: bytes) -> None:
    # Private material: owner-only from the moment the file exists.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
