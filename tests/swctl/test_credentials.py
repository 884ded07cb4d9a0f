"""How swctl and the services find their NATS credentials (no server needed)."""

from __future__ import annotations

import argparse
import json
import ssl
from pathlib import Path

import pytest
from singlewindow.contracts import accounts, card_gateway, registration, review
from singlewindow.runtime.service import ServiceSettings
from singlewindow.swctl.client import Credential, Credentials, CredentialsError, user_for
from singlewindow.swctl.platform import Platform, PlatformConfig, credential_files


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_a_service_takes_its_user_and_password_from_its_credential_file(tmp_path: Path) -> None:
    file = write(
        tmp_path / "accounts.json", {"url": "nats://x", "user": "accounts", "password": "p1"}
    )
    settings = ServiceSettings(nats_credentials_file=file, nats_user="other", nats_password="p2")
    assert settings.nats_credentials() == ("accounts", "p1")
    assert ServiceSettings(nats_user="review", nats_password="p3").nats_credentials() == (
        "review",
        "p3",
    )
    assert ServiceSettings().nats_credentials() is None


def test_a_service_with_a_ca_file_connects_over_tls_trusting_it(tmp_path: Path) -> None:
    from singlewindow.runtime.service import Service
    from sqlalchemy import MetaData

    ca = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    if not ca.exists():
        pytest.fail(f"no CA bundle at {ca} to stand in for the NATS CA")
    settings = ServiceSettings(
        nats_user="review",
        nats_password="p1",
        nats_tls_ca_file=ca,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
    )
    service = Service("review", settings, MetaData())
    # What the broker hands nats.connect (FastStream keeps no public view of it).
    options = service.broker._connection_kwargs
    assert isinstance(options["tls"], ssl.SSLContext)
    assert options["user"] == "review"


def test_swctl_uses_the_portal_for_requests_and_the_workstation_for_card_readers() -> None:
    assert user_for(registration.SUBMIT_CARDLESS) == "portal"
    assert user_for(accounts.LOGIN_PASSWORD) == "portal"
    assert user_for(review.LIST_TASKS) == "portal"
    for endpoint in (
        card_gateway.LIST_READERS,
        card_gateway.READ_CARD,
        card_gateway.VERIFY_PIN,
        card_gateway.SIGN_CHALLENGE,
    ):
        assert user_for(endpoint) == "workstation"


def test_swctl_finds_the_data_directorys_credentials_or_the_one_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SW_CREDENTIALS", raising=False)
    found = Credentials.of(argparse.Namespace(data_dir=str(tmp_path), credentials=None))
    assert found.path("portal") == tmp_path / "credentials" / "portal.json"
    assert found.path("operator") == tmp_path / "credentials" / "operator.json"
    monkeypatch.setenv("SW_CREDENTIALS", str(tmp_path / "mine.json"))
    given = Credentials.of(argparse.Namespace(data_dir=str(tmp_path), credentials=None))
    assert given.path("operator") == tmp_path / "mine.json"
    flag = Credentials.of(argparse.Namespace(data_dir="var", credentials=str(tmp_path / "f.json")))
    assert flag.path("portal") == tmp_path / "f.json"


@pytest.mark.parametrize(
    "content",
    ["not json", json.dumps([1]), json.dumps({"url": "nats://x", "user": "portal"})],
)
def test_a_damaged_credential_file_is_named_in_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "portal.json"
    path.write_text(content)
    with pytest.raises(CredentialsError, match=str(path)):
        Credential.load(path)
    with pytest.raises(CredentialsError, match="cannot read"):
        Credential.load(tmp_path / "missing.json")


def test_status_names_each_clients_credential_file(tmp_path: Path) -> None:
    files = credential_files(tmp_path)
    directory = tmp_path / "credentials"
    assert files == {
        "portal": str(directory / "portal.json"),
        "workstation": str(directory / "workstation.json"),
        "subscriber": str(directory / "subscriber.json"),
        "operator": str(directory / "operator.json"),
        "bootstrap_admin": str(directory / "bootstrap-admin.json"),
    }


def test_a_damaged_credential_gets_a_new_password_the_others_are_kept(tmp_path: Path) -> None:
    config = PlatformConfig(data_dir=tmp_path, nats_port=4999)
    Platform(config).write_credentials()
    kept = json.loads(config.credentials_file("portal").read_text())
    config.credentials_file("operator").write_text("{oops")
    again = Platform(config)
    again.write_credentials()
    assert json.loads(config.credentials_file("portal").read_text()) == kept
    assert kept["url"] == "nats://127.0.0.1:4999"
    operator = json.loads(config.credentials_file("operator").read_text())
    assert operator["user"] == "operator"
    assert operator["password"].isalnum()
    assert operator["password"][0].isalpha()
