"""The contracts install and import without the server stack, as an integrating system needs."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_STACK = ("faststream", "sqlalchemy", "structlog", "prometheus_client", "uvicorn", "argon2")


def test_every_contract_imports_without_the_server_stack() -> None:
    probe = (
        "import sys\n"
        "from singlewindow import contracts\n"
        "from singlewindow.contracts import wire, bus\n"
        "contracts.service_contracts()\n"
        f"print(sorted(m for m in {SERVER_STACK!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_contracts_and_swctl_declare_no_server_dependency() -> None:
    for member in ("shared/contracts", "swctl"):
        project = tomllib.loads((ROOT / member / "pyproject.toml").read_text())["project"]
        declared = " ".join(project["dependencies"])
        for package in ("faststream", "sqlalchemy", "singlewindow-runtime", "structlog"):
            assert package not in declared, (member, package)


# Each costs an idle service some 3-10 MiB: migrations run in a child; secrets are sealed and
# opened only when a qualification is saved or shown; certificates are parsed only on a card
# path; PostgreSQL's dialect is imported only for a PostgreSQL database (default here: SQLite);
# structlog's console renderers leave rich (installed here, by schemathesis) unimported; filing
# imports jsonschema on the first filing it checks.
LAZY = (
    "alembic",
    "cryptography",
    "asn1crypto",
    "sqlalchemy.dialects.postgresql",
    "rich",
    "jsonschema",
)


@pytest.mark.parametrize("service", ["accounts", "registration", "review", "filing"])
def test_an_idle_service_on_sqlite_loads_no_module_it_does_not_use(
    service: str, tmp_path: Path
) -> None:
    probe = (
        "import sys\n"
        f"import singlewindow.{service}.app\n"
        f"print(sorted(m for m in {LAZY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
    )
    assert result.stdout.strip() == "[]"
