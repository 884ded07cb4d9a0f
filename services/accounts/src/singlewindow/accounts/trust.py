"""The card CA that card certificates must chain to, and its revocation list, from files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from singlewindow import cardcrypto
from singlewindow.cardcrypto import CertificateError
from singlewindow.contracts.errors import DomainError, ErrorCode

if TYPE_CHECKING:
    from singlewindow.cardcrypto import RevocationList

log = structlog.get_logger("singlewindow.accounts.trust")


@dataclass(frozen=True)
class Trust:
    """What card certificates are checked against: the CA certificate and its CRL (DER)."""

    anchor: bytes
    crl: bytes | None
    revocations: RevocationList | None
    """The CRL read and its signature checked (once per CRL file); None without a CRL."""


@dataclass
class _Cached:
    key: tuple[int, int, int]
    der: bytes


class TrustStore:
    """The trusted card CA and its revocation list, read from files, re-read when they change.

    A revocation takes effect as soon as the CRL file is replaced: no restart. A CA or CRL file
    that is configured but cannot be read refuses every card request (fail closed).
    """

    def __init__(self, anchor: Path | None, crl: Path | None) -> None:
        self.anchor = anchor
        self.crl = crl
        self._cache: dict[Path, _Cached] = {}
        self._revocations: tuple[bytes, bytes, RevocationList] | None = None

    def current(self) -> Trust:
        """The CA certificate and CRL as the files hold them now."""
        if self.anchor is None:
            raise DomainError(
                ErrorCode.CARD_REFUSED,
                "card requests are not available: no trusted card CA is configured "
                "(SW_ACCOUNTS_CARD_TRUST_ANCHOR)",
            )
        anchor = self._read(self.anchor, "CA certificate", cardcrypto.certificate_from_pem)
        crl = (
            None
            if self.crl is None
            else self._read(self.crl, "revocation list", cardcrypto.crl_from_pem)
        )
        return Trust(anchor=anchor, crl=crl, revocations=self._revocation_list(anchor, crl))

    def _revocation_list(self, anchor: bytes, crl: bytes | None) -> RevocationList | None:
        if crl is None:
            return None
        cached = self._revocations
        if cached is not None and cached[0] is anchor and cached[1] is crl:
            return cached[2]
        try:
            revocations = cardcrypto.load_revocation_list(crl, anchor)
        except CertificateError as exc:
            log.error("card revocation list refused", path=str(self.crl), problem=str(exc))
            raise DomainError(
                ErrorCode.CARD_REFUSED, f"card requests are not available: {exc.problem.value}"
            ) from exc
        self._revocations = (anchor, crl, revocations)
        return revocations

    def _read(self, path: Path, what: str, from_pem: Callable[[bytes], bytes]) -> bytes:
        try:
            status = path.stat()
            key = (status.st_mtime_ns, status.st_size, status.st_ino)
            cached = self._cache.get(path)
            if cached is not None and cached.key == key:
                return cached.der
            data = path.read_bytes()
            der = from_pem(data) if b"-----BEGIN" in data else data
        except (OSError, ValueError) as exc:
            log.error("card trust file unreadable", path=str(path), what=what, error=str(exc))
            raise DomainError(
                ErrorCode.CARD_REFUSED,
                f"card requests are not available: the platform cannot read its card {what}",
            ) from exc
        self._cache[path] = _Cached(key, der)
        log.info("card trust file loaded", path=str(path), what=what)
        return der
