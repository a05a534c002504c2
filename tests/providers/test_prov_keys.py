import datetime
import stat

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from providers.crypto import rsa_sign, rsa_verify
from providers.keys import DevKeys, load_private_key, load_public_key


def test_dev_keys_persist_on_first_creation_and_load_the_same(tmp_path):
    first = DevKeys.load_or_create(tmp_path / "keys")
    again = DevKeys.load_or_create(tmp_path / "keys")
    assert again == first
    assert len(first.apiv3_key) == 32
    assert first.wechat_pub_key_id.startswith("PUB_KEY_ID_")
    assert len(set(first.wechat_platform_public_keys())) == 2
    mode = (tmp_path / "keys" / "merchant_private.pem").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_each_pair_signs_and_verifies_and_pairs_are_distinct(keys):
    pairs = [
        keys.merchant,
        keys.wechat_platform,
        keys.wechat_pubkey,
        keys.alipay_app,
        keys.alipay_platform,
    ]
    assert len({p.public_pem for p in pairs}) == len(pairs)
    for pair in pairs:
        signature = rsa_sign(load_private_key(pair.private_pem), b"message")
        assert rsa_verify(load_public_key(pair.public_pem), b"message", signature)
        assert not rsa_verify(load_public_key(pair.public_pem), b"messagE", signature)


def test_a_platform_certificate_is_accepted_where_a_public_key_is(keys):
    key = load_private_key(keys.wechat_platform.private_pem)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int(keys.wechat_platform_serial, 16))
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    assert rsa_verify(load_public_key(pem), b"m", rsa_sign(key, b"m"))
