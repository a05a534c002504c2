"""The few primitives both providers build on: SHA256withRSA and AES-256-GCM."""

from __future__ import annotations

import base64
import secrets
import string

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_ALPHABET = string.ascii_uppercase + string.digits


def nonce_str(length: int = 32) -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(length))


def rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64: WeChat Pay v3 and Alipay RSA2 alike."""
    signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa_verify(key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def aes_gcm_encrypt(key: bytes, nonce: str, associated_data: str, plaintext: bytes) -> str:
    # cryptography appends the 16-byte tag to the ciphertext, the layout WeChat uses.
    sealed = AESGCM(key).encrypt(nonce.encode(), plaintext, associated_data.encode() or None)
    return base64.b64encode(sealed).decode("ascii")


def aes_gcm_decrypt(key: bytes, nonce: str, associated_data: str, ciphertext_b64: str) -> bytes:
    """Raises ValueError on any tampering (bad base64, wrong key, nonce, AAD or tag)."""
    try:
        sealed = base64.b64decode(ciphertext_b64, validate=True)
        return AESGCM(key).decrypt(nonce.encode(), sealed, associated_data.encode() or None)
    except (InvalidTag, ValueError) as exc:
        raise ValueError("AES-GCM decryption failed") from exc


def rsa_oaep_encrypt(key: rsa.RSAPublicKey, plaintext: str) -> str:
    """WeChat Pay's sensitive-field encryption (e.g. a payee's real name): RSA-OAEP/SHA1."""
    sealed = key.encrypt(plaintext.encode(), _OAEP)
    return base64.b64encode(sealed).decode("ascii")


def rsa_oaep_decrypt(key: rsa.RSAPrivateKey, ciphertext_b64: str) -> str:
    return key.decrypt(base64.b64decode(ciphertext_b64), _OAEP).decode()


_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
