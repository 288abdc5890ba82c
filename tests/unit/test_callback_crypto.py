"""The platform's callback crypto: signature, AES-256-CBC with 32-byte PKCS#7, strict decryption."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from chalicelib.callbacks import crypto
from chalicelib.errors import CallbackRejected
from chalicelib.http import problem_body
from chalicelib.secrets import TpAppCredentials
from tests.callback_factory import encrypt_like_platform, new_credentials, sign_like_platform
from tests.problems import problem

FIXED_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as the console shows them


def _raw_plaintext(credentials: TpAppCredentials, encrypt: str, key: str | None = None) -> bytes:
    """Decrypt without unpadding, to look at the pad bytes the encoder produced."""
    raw_key = base64.b64decode((key or credentials.aes_key) + "=")
    decryptor = Cipher(algorithms.AES(raw_key), modes.CBC(raw_key[:16])).decryptor()
    return decryptor.update(base64.b64decode(encrypt)) + decryptor.finalize()


def _open(credentials: TpAppCredentials, body: dict[str, str]) -> bytes:
    return crypto.open_callback(credentials, body["TimeStamp"], body["Nonce"], body["Encrypt"], body["MsgSignature"])


def _signed(credentials: TpAppCredentials, encrypt: str, timestamp: str = "1700000000", nonce: str = "n1") -> dict:
    return {"TimeStamp": timestamp, "Nonce": nonce, "Encrypt": encrypt,
            "MsgSignature": sign_like_platform(credentials.token, timestamp, nonce, encrypt)}


def _encrypt_raw_plaintext(aes_key: str, plaintext: bytes) -> str:
    """AES-CBC over bytes that are already block-aligned: lets a test craft any padding it wants."""
    key = base64.b64decode(aes_key + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plaintext) + encryptor.finalize()).decode()


@pytest.mark.parametrize("platform", ["douyin", "wechat"])
@pytest.mark.parametrize("pad_value", range(1, 33))
def test_callback_crypto__round_trip_every_pad_length__message_comes_back(platform, pad_value):
    # GIVEN a message sized so that the plaintext needs exactly `pad_value` pad bytes
    credentials = new_credentials(platform)
    fixed = crypto.RANDOM_PREFIX_BYTES[platform] + 4 + len(credentials.expected_receiver_id.encode())
    length = (32 - pad_value - fixed) % 32 + 32
    message = json.dumps({"Event": "PUSH", "x": "y" * 200})[: length].encode()
    assert len(message) == length
    # WHEN it is built and opened again
    body = crypto.build_callback(credentials, message, timestamp="1700000000", nonce="abc")
    # THEN the padding really is `pad_value` bytes of `pad_value`, and the message survives unchanged
    raw = _raw_plaintext(credentials, body["Encrypt"])
    assert raw[-pad_value:] == bytes([pad_value]) * pad_value
    assert _open(credentials, body) == message


def test_callback_crypto__vector_built_by_hand__encoder_matches_it_byte_for_byte():
    # GIVEN fixed credentials, a fixed random prefix and a fixed message
    credentials = TpAppCredentials(tp_app_id="tt9b8d7c6a5f4e3d2c", token="TestToken", aes_key=FIXED_KEY,
                                   platform="douyin")
    prefix = bytes(range(32))
    message = b'{"Event":"PUSH","Ticket":"t1"}'
    # ... and the expected ciphertext computed step by step from the wire format
    key = base64.b64decode(FIXED_KEY + "=")
    assert len(key) == 32
    plaintext = prefix + struct.pack(">I", len(message)) + message + b"tt9b8d7c6a5f4e3d2c"
    padder = padding.PKCS7(256).padder()
    padded = padder.update(plaintext) + padder.finalize()
    assert len(padded) % 32 == 0
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    expected_encrypt = base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()
    expected_signature = hashlib.sha1("".join(sorted(["TestToken", "1700000000", "12345", expected_encrypt])).encode()
                                      ).hexdigest()
    # WHEN the encoder builds the callback
    body = crypto.build_callback(credentials, message, timestamp="1700000000", nonce="12345", random_prefix=prefix)
    # THEN every field is what the hand computation gives, and the decoder reads it back
    assert body == {"TimeStamp": "1700000000", "Nonce": "12345", "Encrypt": expected_encrypt,
                    "MsgSignature": expected_signature}
    assert _open(credentials, body) == message


def test_callback_crypto__independent_encoder__gateway_decoder_accepts_it():
    # GIVEN a callback made by the test's own platform encoder (not chalicelib's)
    credentials = new_credentials("wechat")
    encrypt = encrypt_like_platform(credentials.aes_key, b'{"Event":"UNAUTHORIZED"}', credentials.tp_app_id,
                                    b"\x07" * 16)
    # WHEN the gateway opens it THEN the message comes out
    assert _open(credentials, _signed(credentials, encrypt)) == b'{"Event":"UNAUTHORIZED"}'


@pytest.mark.parametrize("field", ["TimeStamp", "Nonce", "Encrypt", "MsgSignature"])
def test_callback_crypto__one_field_tampered__rejected_as_signature(field):
    # GIVEN a genuine callback
    credentials = new_credentials()
    body = crypto.build_callback(credentials, b'{"Event":"PUSH"}', timestamp="1700000000", nonce="n0nce")
    # WHEN one character of one field is changed (to a digit: a letter could differ only in case, which the
    # case-insensitive signature comparison rightly accepts)
    value = body[field]
    body[field] = value[:-1] + ("0" if value[-1] != "0" else "1")
    # THEN it is rejected, and the reason (for the log) is the signature
    with pytest.raises(CallbackRejected) as caught:
        _open(credentials, body)
    assert caught.value.reason == "signature"
    assert problem_body(caught.value) == problem('rejected')


def test_callback_crypto__signature_in_upper_case__accepted():
    # GIVEN a genuine callback whose signature arrives in upper-case hex
    credentials = new_credentials()
    body = crypto.build_callback(credentials, b"{}", timestamp="1700000000", nonce="n")
    body["MsgSignature"] = body["MsgSignature"].upper()
    # WHEN / THEN it opens
    assert _open(credentials, body) == b"{}"


def test_callback_crypto__non_ascii_signature__rejected_not_crashing():
    credentials = new_credentials()
    body = crypto.build_callback(credentials, b"{}", timestamp="1700000000", nonce="n")
    body["MsgSignature"] = "签名" * 20
    with pytest.raises(CallbackRejected) as caught:
        _open(credentials, body)
    assert caught.value.reason == "signature"


def _signed_raw(credentials: TpAppCredentials, plaintext: bytes) -> dict:
    return _signed(credentials, _encrypt_raw_plaintext(credentials.aes_key, plaintext))


def _plaintext(credentials: TpAppCredentials, message: bytes, receiver: bytes | None = None,
               declared_length: int | None = None) -> bytes:
    receiver = credentials.expected_receiver_id.encode() if receiver is None else receiver
    length = len(message) if declared_length is None else declared_length
    return b"\x01" * 32 + struct.pack(">I", length) + message + receiver


@pytest.mark.parametrize(
    ("case", "expected_reason"),
    [
        ("pad_byte_zero", "padding"),
        ("pad_value_over_32", "padding"),
        ("pad_bytes_unequal", "padding"),
        ("length_beyond_plaintext", "length"),
        ("receiver_id_of_another_app", "receiver_id"),
        ("receiver_id_missing", "receiver_id"),
        ("receiver_id_with_extra_bytes", "receiver_id"),
        ("shorter_than_prefix_and_length", "length"),
        ("not_base64", "base64"),
        ("sixteen_byte_blocks_only", "ciphertext_length"),
        ("empty", "ciphertext_length"),
    ],
)
def test_callback_crypto__signed_but_broken_plaintext__rejected_with_logged_reason(case, expected_reason):
    # GIVEN a correctly signed callback whose encrypted content is broken in one specific way
    credentials = new_credentials()
    message = b'{"Event":"PUSH"}'

    def padded(data: bytes, value: int | None = None, count: int | None = None) -> bytes:
        n = 32 - len(data) % 32
        return data + bytes([value if value is not None else n]) * (count or n)

    plaintexts = {
        "pad_byte_zero": lambda: padded(_plaintext(credentials, message), value=0),
        "pad_value_over_32": lambda: _plaintext(credentials, message).ljust(128, b"\x00")[:127] + b"\x21",
        "pad_bytes_unequal": lambda: (lambda p: p[:-2] + bytes([p[-1] - 1]) + p[-1:])(
            padded(_plaintext(credentials, message + b" " * 3))),
        "length_beyond_plaintext": lambda: padded(_plaintext(credentials, message, declared_length=5000)),
        "receiver_id_of_another_app": lambda: padded(_plaintext(credentials, message, receiver=b"tpSomeoneElse")),
        "receiver_id_missing": lambda: padded(_plaintext(credentials, message, receiver=b"")),
        "receiver_id_with_extra_bytes": lambda: padded(_plaintext(
            credentials, message, receiver=credentials.expected_receiver_id.encode() + b"x")),
        "shorter_than_prefix_and_length": lambda: padded(b"\x01" * 20),
    }
    if case in plaintexts:
        plaintext = plaintexts[case]()
        assert len(plaintext) % 32 == 0
        body = _signed_raw(credentials, plaintext)
    elif case == "not_base64":
        body = _signed(credentials, "%%not base64%%")
    elif case == "sixteen_byte_blocks_only":
        body = _signed(credentials, _encrypt_raw_plaintext(credentials.aes_key, b"\x10" * 48))
    else:
        body = _signed(credentials, "")
    # WHEN it is opened THEN it is refused, for the reason the log will carry
    with pytest.raises(CallbackRejected) as caught:
        _open(credentials, body)
    assert caught.value.reason == expected_reason
    assert problem_body(caught.value) == problem('rejected')


def test_callback_crypto__pad_of_exactly_32__accepted_where_a_16_byte_unpadder_would_fail():
    # GIVEN a plaintext that is already a multiple of 32 bytes, so the pad is a whole block of 0x20
    credentials = new_credentials()
    fixed = 32 + 4 + len(credentials.expected_receiver_id)
    message = b"x" * ((-fixed) % 32 + 32)
    body = crypto.build_callback(credentials, message, timestamp="1", nonce="n")
    assert _raw_plaintext(credentials, body["Encrypt"])[-32:] == b"\x20" * 32
    # WHEN a 16-byte PKCS#7 unpadder sees it, it refuses (pad value 32 > block size 16)
    unpadder = padding.PKCS7(128).unpadder()
    with pytest.raises(ValueError):
        unpadder.update(_raw_plaintext(credentials, body["Encrypt"]))
        unpadder.finalize()
    # THEN the gateway's 32-byte unpadder accepts it
    assert _open(credentials, body) == message


def test_callback_crypto__old_key_while_configured_as_previous__accepted():
    # GIVEN a tp app rotated to a new key, keeping the old one as previous
    old = new_credentials()
    rotated = replace(old, aes_key=new_credentials().aes_key, previous_aes_key=old.aes_key)
    # WHEN the platform still encrypts with the old key
    body = crypto.build_callback(rotated, b'{"Event":"PUSH"}', timestamp="1700000000", nonce="n", aes_key=old.aes_key)
    # THEN the callback opens
    assert _open(rotated, body) == b'{"Event":"PUSH"}'
    # ... and so does one on the new key
    assert _open(rotated, crypto.build_callback(rotated, b"{}", timestamp="1700000000", nonce="n")) == b"{}"


def test_callback_crypto__old_key_after_previous_removed__rejected():
    # GIVEN the rotation finished: the previous key is no longer configured
    old = new_credentials()
    done = replace(old, aes_key=new_credentials().aes_key, previous_aes_key=None)
    # WHEN a callback encrypted with the old key arrives
    body = crypto.build_callback(done, b'{"Event":"PUSH"}', timestamp="1700000000", nonce="n", aes_key=old.aes_key)
    # THEN it is rejected (a wrong key shows up as broken padding, length or receiver id)
    with pytest.raises(CallbackRejected) as caught:
        _open(done, body)
    assert caught.value.reason in {"padding", "length", "receiver_id"}


def test_callback_crypto__neither_key_fits__reason_names_both_attempts():
    credentials = new_credentials(previous_aes_key=new_credentials().aes_key)
    body = crypto.build_callback(credentials, b"{}", timestamp="1", nonce="n", aes_key=new_credentials().aes_key)
    with pytest.raises(CallbackRejected) as caught:
        _open(credentials, body)
    assert "(current key)" in caught.value.reason and "(previous key)" in caught.value.reason


@pytest.mark.parametrize("bad", ["short", "!" * 43, FIXED_KEY + "A"])
def test_callback_crypto__malformed_encoding_aes_key__value_error(bad):
    with pytest.raises(ValueError):
        crypto.aes_key_bytes(bad)


def test_callback_crypto__random_prefix_of_wrong_length__value_error():
    with pytest.raises(ValueError):
        crypto.build_callback(new_credentials("wechat"), b"{}", timestamp="1", nonce="n", random_prefix=b"x" * 32)


def test_callback_crypto__signature__is_sorted_sha1_hex():
    assert crypto.signature("b", "a", "d", "c") == hashlib.sha1(b"abcd").hexdigest()
