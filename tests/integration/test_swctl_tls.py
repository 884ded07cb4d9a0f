"""swctl reaching a NATS whose TLS certificate a private CA signed, as in Kubernetes.

A throwaway CA and server certificate (openssl), a real nats-server with TLS on, and a stand-in
for every service answering on `sw.rpc.>`: swctl trusts the server only with `--nats-ca`
($SW_NATS_CA, a credential's `"ca"`), and says plainly why it cannot connect otherwise.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.msg import Msg
from singlewindow.swctl.errors import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE
from singlewindow.swctl.platform import nats_server_binary

from tests.support.platform import free_port
from tests.support.swctl import Swctl

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Certificates:
    ca: Path
    other_ca: Path
    """A CA that did not sign the server's certificate."""
    cert: Path
    key: Path


def make_certificates(directory: Path) -> Certificates:
    """A CA, a second CA, and a server certificate for 127.0.0.1 the first one signed."""
    for name in ("ca", "other-ca"):
        openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(directory / f"{name}.key"), "-out", str(directory / f"{name}.pem"),
            "-days", "1", "-subj", f"/CN=test {name}",
        )  # fmt: skip
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(directory / "server.key"), "-out", str(directory / "server.csr"),
        "-subj", "/CN=nats",
    )  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509", "-req", "-in", str(directory / "server.csr"),
        "-CA", str(directory / "ca.pem"), "-CAkey", str(directory / "ca.key"),
        "-CAcreateserial", "-days", "1", "-extfile", str(directory / "san.ext"),
        "-out", str(directory / "server.pem"),
    )  # fmt: skip
    return Certificates(
        ca=directory / "ca.pem",
        other_ca=directory / "other-ca.pem",
        cert=directory / "server.pem",
        key=directory / "server.key",
    )


@dataclass(frozen=True)
class TlsNats:
    url: str
    certificates: Certificates
    directory: Path

    def swctl(self, name: str) -> Swctl:
        """swctl with its own config directory and an empty data directory (no credentials)."""
        data = self.directory / name / "data"
        data.mkdir(parents=True)
        return Swctl(self.url, self.directory / name / "config", data)


@pytest.fixture(scope="module")
def tls_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsNats]:
    """nats-server with TLS required, its certificate signed by a throwaway CA."""
    directory = tmp_path_factory.mktemp("tls")
    certificates = make_certificates(directory)
    port = free_port()
    conf = directory / "nats.conf"
    conf.write_text(
        f"port: {port}\nhost: 127.0.0.1\n"
        f'tls {{ cert_file: "{certificates.cert}"\n key_file: "{certificates.key}" }}\n'
    )
    process = subprocess.Popen(
        [nats_server_binary(), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        yield TlsNats(f"tls://127.0.0.1:{port}", certificates, directory)
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("nats-server exited at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nats-server did not listen")


@asynccontextmanager
async def services_answering(server: TlsNats) -> AsyncIterator[None]:
    """A stand-in for every service: each request gets a `malformed` refusal, as an empty one does."""
    nc = await nats.connect(
        server.url, tls=ssl.create_default_context(cafile=str(server.certificates.ca))
    )

    async def answer(msg: Msg) -> None:
        await msg.respond(b'{"error": {"code": "malformed", "message": "empty", "fields": []}}')

    await nc.subscribe("sw.rpc.>", cb=answer)
    await nc.flush()
    try:
        yield
    finally:
        await nc.close()


LOGIN = ("login", "--account", "acme", "--password-stdin")


async def status(
    swctl: Swctl, *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    result = await asyncio.to_thread(swctl, *args, "status", "--json", extra_env=env)
    assert "Traceback" not in result.stderr
    return result.code, json.loads(result.stdout)


async def test_swctl_trusts_the_private_ca_it_is_given(tls_nats: TlsNats) -> None:
    swctl = tls_nats.swctl("given")
    async with services_answering(tls_nats):
        code, report = await status(swctl, "--nats-ca", str(tls_nats.certificates.ca))
        assert report["nats"] == "ready"
        assert {s["state"] for s in report["services"].values()} == {"ready"}
        assert code == EXIT_OK
        by_env, report = await status(swctl, env={"SW_NATS_CA": str(tls_nats.certificates.ca)})
        assert by_env == EXIT_OK
        assert report["nats"] == "ready"
        # A request goes through and its (stand-in's) answer comes back.
        login = await asyncio.to_thread(
            swctl, "--nats-ca", str(tls_nats.certificates.ca), *LOGIN, stdin="secret\n"
        )
        assert (login.code, login.stderr) == (EXIT_REFUSED, "refused: empty\n")


async def test_a_credentials_ca_is_relative_to_its_file(tls_nats: TlsNats) -> None:
    swctl = tls_nats.swctl("credential")
    async with services_answering(tls_nats):
        with_ca = tls_nats.directory / "credential" / "portal.json"
        (tls_nats.directory / "credential" / "nats-ca.pem").write_bytes(
            tls_nats.certificates.ca.read_bytes()
        )
        with_ca.write_text(
            json.dumps(
                {"url": tls_nats.url, "user": "portal", "password": "p", "ca": "nats-ca.pem"}
            )
        )
        code, report = await status(swctl, "--credentials", str(with_ca))
        assert report["nats"] == "ready"
        assert code == EXIT_OK


async def test_without_the_ca_swctl_says_the_certificate_is_not_trusted(
    tls_nats: TlsNats,
) -> None:
    swctl = tls_nats.swctl("without")
    async with services_answering(tls_nats):
        code, report = await status(swctl)
        assert code == EXIT_UNREACHABLE
        assert report["nats"] == "down"
        assert "not signed by a trusted CA (--nats-ca FILE)" in report["detail"]
        code, report = await status(swctl, "--nats-ca", str(tls_nats.certificates.other_ca))
        assert code == EXIT_UNREACHABLE
        assert f"not signed by the CA in {tls_nats.certificates.other_ca}" in report["detail"]
        login = await asyncio.to_thread(swctl, *LOGIN, stdin="secret\n")
        assert login.code == EXIT_UNREACHABLE
        assert login.stderr == (
            f"unreachable: cannot reach NATS at {tls_nats.url} as portal;"
            " its certificate is not signed by a trusted CA (--nats-ca FILE)\n"
        )


@pytest.mark.parametrize("problem", ["missing", "not a certificate"])
async def test_a_ca_file_that_is_missing_or_not_a_certificate_is_a_plain_error(
    tls_nats: TlsNats, problem: str
) -> None:
    swctl = tls_nats.swctl(problem.replace(" ", "-"))
    ca = tls_nats.directory / f"{problem}.pem"
    if problem != "missing":
        ca.write_text(
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
        )
    code, report = await status(swctl, "--nats-ca", str(ca))
    assert code == EXIT_UNREACHABLE
    expected = "does not exist" if problem == "missing" else "holds no PEM certificate"
    assert report["detail"] == f"the NATS CA file {ca} {expected}"
    result = await asyncio.to_thread(swctl, "--nats-ca", str(ca), *LOGIN, stdin="secret\n")
    assert result.code == EXIT_UNREACHABLE
    assert result.stderr == f"unreachable: the NATS CA file {ca} {expected}\n"
