"""Bilibili open-live request signing (chalicelib.play.signing), against a vector computed outside Python.

The vector was computed with coreutils and OpenSSL, not with any code of this repository:
    printf '%s' '{"code":"ABC","app_id":7}' | md5sum
    printf 'x-bili-accesskeyid:rgak-7-...\\nx-bili-content-md5:...\\n...x-bili-timestamp:1700000000' \
        | openssl dgst -sha256 -hmac 'sekret-Key_1'
"""

from __future__ import annotations

import pytest

from chalicelib.errors import ContentMd5Mismatch, SignatureInvalid, TimestampOutOfWindow
from chalicelib.play import signing

BODY = b'{"code":"ABC","app_id":7}'
SECRET = "sekret-Key_1"
MD5 = "26b581540ae0623fb34d0091a65915eb"
EXPECTED = "1bd08650a1fbe72b2c49495f921f8d7e1cf7742b9521d1e0af84e76ce65efdcb"
# Deliberately out of order: the signer must sort by name.
HEADERS = {
    "x-bili-timestamp": "1700000000",
    "x-bili-signature-nonce": "123456",
    "x-bili-accesskeyid": "rgak-7-0123456789abcdef01234567",
    "x-bili-signature-version": "1.0",
    "x-bili-content-md5": MD5,
    "x-bili-signature-method": "HMAC-SHA256",
}
STRING_TO_SIGN = (
    "x-bili-accesskeyid:rgak-7-0123456789abcdef01234567\n"
    f"x-bili-content-md5:{MD5}\n"
    "x-bili-signature-method:HMAC-SHA256\n"
    "x-bili-signature-nonce:123456\n"
    "x-bili-signature-version:1.0\n"
    "x-bili-timestamp:1700000000"
)


def signed(**overrides: str) -> signing.SignedRequest:
    return signing.parse_headers({**HEADERS, "authorization": EXPECTED, **overrides})


def test_signature__vector_computed_by_openssl__matches():
    assert signing.content_md5(BODY) == MD5
    assert signing.string_to_sign(HEADERS) == STRING_TO_SIGN
    assert signing.signature(SECRET, HEADERS) == EXPECTED


def test_check_signature__vector__accepted_upper_or_lower_case_hex():
    signing.check_signature(signed(), SECRET)
    signing.check_signature(signed(authorization=EXPECTED.upper()), SECRET)


@pytest.mark.parametrize("change", [
    {"authorization": EXPECTED[:-1] + "0"},
    {"x-bili-signature-nonce": "123457"},
    {"x-bili-timestamp": "1700000001"},
    {"x-bili-accesskeyid": "rgak-7-0123456789abcdef01234568"},
])
def test_check_signature__any_signed_part_changed__refused(change):
    with pytest.raises(SignatureInvalid):
        signing.check_signature(signed(**change), SECRET)


def test_check_signature__other_secret__refused():
    with pytest.raises(SignatureInvalid):
        signing.check_signature(signed(), SECRET + "x")


@pytest.mark.parametrize("missing", [*signing.SIGNED_HEADERS, "authorization"])
def test_parse_headers__a_header_missing__refused_naming_it(missing):
    headers = {**HEADERS, "authorization": EXPECTED}
    del headers[missing]
    with pytest.raises(SignatureInvalid, match=missing):
        signing.parse_headers(headers)


@pytest.mark.parametrize(("name", "value"), [("x-bili-signature-method", "HMAC-SHA1"),
                                             ("x-bili-signature-version", "2.0"),
                                             ("x-bili-signature-nonce", "n" * 200)])
def test_parse_headers__unsupported_method_version_or_absurd_value__refused(name, value):
    with pytest.raises(SignatureInvalid):
        signing.parse_headers({**HEADERS, "authorization": EXPECTED, name: value})


@pytest.mark.parametrize(("now_s", "ok"), [(1700000000, True), (1700000300, True), (1699999700, True),
                                           (1700000301, False), (1699999699, False)])
def test_check_timestamp__window_of_300_s_either_way(now_s, ok):
    if ok:
        signing.check_timestamp(signed(), now_s, 300)
    else:
        with pytest.raises(TimestampOutOfWindow):
            signing.check_timestamp(signed(), now_s, 300)


def test_check_timestamp__not_digits__refused():
    with pytest.raises(TimestampOutOfWindow):
        signing.check_timestamp(signed(**{"x-bili-timestamp": "17e8"}), 1700000000, 300)


def test_check_body__md5_of_another_body__refused():
    signing.check_body(signed(), BODY)
    with pytest.raises(ContentMd5Mismatch):
        signing.check_body(signed(), BODY + b" ")


def test_sign_headers__what_rewardgate_tools_send__verifies():
    headers = signing.sign_headers("rgak-7-0123456789abcdef01234567", SECRET, BODY, "123456", 1700000000)
    assert headers["Authorization"] == EXPECTED
    lower = {k.lower(): v for k, v in headers.items()}
    request = signing.parse_headers(lower)
    signing.check_body(request, BODY)
    signing.check_signature(request, SECRET)
