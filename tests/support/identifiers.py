"""Valid identifiers made to order, so each test owns its enterprise."""

from __future__ import annotations

import secrets
from typing import Any

from singlewindow.contracts.identifiers import organisation_code_check_digit
from stdnum.cn import uscc as stdnum_uscc

_DIGITS = "0123456789"


def make_uscc(prefix: str = "91", division: str = "500000") -> str:
    """A fresh, valid USCC: random organisation code, correct check characters."""
    body = "".join(secrets.choice(_DIGITS) for _ in range(8))
    organisation_code = body + organisation_code_check_digit(body)
    first17 = prefix + division + organisation_code
    return first17 + stdnum_uscc.calc_check_digit(first17)


def make_account(stem: str = "admin") -> str:
    """A fresh account name."""
    return f"{stem}_{secrets.token_hex(4)}"


def application(
    *,
    uscc: str | None = None,
    account: str | None = None,
    password: str = "Chongqing-Trade-2026",
) -> dict[str, Any]:
    """A valid cardless application (the README's example, with fresh identifiers)."""
    return {
        "enterprise": {
            "uscc": uscc or make_uscc(),
            "name": "重庆某某贸易有限公司",
            "name_en": "Chongqing Example Trading Co., Ltd.",
            "division": "500000",
            "address": "重庆市渝北区金开大道88号",
            "legal_representative": {
                "name": "张三",
                "id_type": "resident_id",
                "id_number": "11010519491231002X",
                "mobile": "13800138000",
            },
        },
        "admin": {
            "account": account or make_account(),
            "name": "李四",
            "id_type": "resident_id",
            "id_number": "11010519491231002X",
            "mobile": "+86 139 0000 0001",
            "email": None,
            "password": password,
        },
    }
