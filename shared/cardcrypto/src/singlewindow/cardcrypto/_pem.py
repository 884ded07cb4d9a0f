"""PEM armour (RFC 7468) for DER blobs."""

from __future__ import annotations

import base64
import binascii
import re

_BLOCK = re.compile(
    rb"-----BEGIN (?P<label>[A-Z0-9 ]+)-----\s*(?P<body>[A-Za-z0-9+/=\s]*?)\s*"
    rb"-----END (?P=label)-----"
)


def pem_encode(label: str, der: bytes) -> str:
    """A PEM block with 64-character lines, as OpenSSL writes it."""
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])


def pem_decode(pem: str | bytes, *labels: str) -> bytes:
    """The DER of the first PEM block whose label is one of labels."""
    data = pem.encode("ascii") if isinstance(pem, str) else pem
    for match in _BLOCK.finditer(data):
        if match["label"].decode("ascii") in labels:
            try:
                return base64.b64decode(b"".join(match["body"].split()), validate=True)
            except binascii.Error as exc:
                raise ValueError("PEM body is not valid base64") from exc
    raise ValueError(f"no PEM block labelled {' or '.join(labels)}")
