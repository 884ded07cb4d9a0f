"""pcscd with the vsmartcard ``vpcd`` reader, where the virtual E-Port card is put.

Two ways to have one:

``system``
    The machine's pcscd, with Debian's ``/etc/reader.conf.d/vpcd``: slot ``Virtual PCD 00 00``
    takes a card on TCP port 35963, ``Virtual PCD 00 01`` on 35964. One already running is used
    and left running; otherwise one is started (and stopped with ``stop``). Real readers plugged
    into the machine show up beside the virtual ones. This is what ``swctl up`` uses.
``private``
    A pcscd of its own, with its own reader.conf (the vpcd driver takes its port from
    ``DEVICENAME /dev/null:PORT``) and its own socket, so that tests neither see nor disturb
    the machine's readers. pcscd's socket path is compiled in (``/run/pcscd/pcscd.comm``; only
    the client library reads ``PCSCLITE_CSOCK_NAME``), so the private pcscd runs in a mount
    namespace of its own (``unshare``, which needs root) where a private directory is mounted
    over ``/run/pcscd``; clients reach its socket there with ``PCSCLITE_CSOCK_NAME``.

``auto`` is private where the machine allows it, system otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

Mode = Literal["system", "private", "auto"]

VPCD_DRIVER: Final = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
SYSTEM_VPCD_CONF: Final = Path("/etc/reader.conf.d/vpcd")
SYSTEM_SOCKET: Final = Path("/run/pcscd/pcscd.comm")
SYSTEM_PID_FILE: Final = Path("/run/pcscd/pcscd.pid")
DEFAULT_VPCD_PORT: Final = 35963
READER_NAMES: Final = ("Virtual PCD 00 00", "Virtual PCD 00 01")
"""The vpcd driver's two slots: a card for slot i connects to the base port + i."""
SOCKET_ENV: Final = "PCSCLITE_CSOCK_NAME"


class PcscdUnavailable(Exception):
    """pcscd with the vpcd reader cannot be had here; the message says what is missing."""


@dataclass
class Pcscd:
    """A pcscd with the vpcd reader, and how to reach it."""

    mode: Literal["system", "private"]
    socket: Path
    vpcd_port: int
    log: Path | None
    process: subprocess.Popen[bytes] | None = None
    """The pcscd started here; None for a system pcscd that was already running."""
    _socket_dir: Path | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else _system_pid()

    @property
    def readers(self) -> tuple[str, ...]:
        return READER_NAMES

    def port_of(self, reader: str) -> int:
        """The TCP port where a virtual card goes into ``reader``."""
        return self.vpcd_port + READER_NAMES.index(reader)

    def environment(self) -> dict[str, str]:
        """What a PC/SC client (card-gateway) needs in its environment to reach this pcscd."""
        return {SOCKET_ENV: str(self.socket)}

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the pcscd started here (a system pcscd found running is left alone)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None


def check_installed() -> None:
    """Raise PcscdUnavailable saying what to install if pcscd or the vpcd driver is missing."""
    if shutil.which("pcscd", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
        raise PcscdUnavailable("pcscd is not installed (apt-get install pcscd)")
    if not VPCD_DRIVER.exists() or not SYSTEM_VPCD_CONF.exists():
        raise PcscdUnavailable(
            "the vpcd virtual reader is not installed (apt-get install vsmartcard-vpcd)"
        )


def _pcscd_binary() -> str:
    found = shutil.which("pcscd", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    assert found is not None
    return found


def system_vpcd_port() -> int:
    """The port of slot 00 00 in Debian's vpcd configuration (``DEVICENAME /dev/null:PORT``)."""
    try:
        text = SYSTEM_VPCD_CONF.read_text()
    except OSError:
        return DEFAULT_VPCD_PORT
    match = re.search(r"^\s*DEVICENAME\s+\S*?:(0x[0-9A-Fa-f]+|[0-9]+)\s*$", text, re.MULTILINE)
    return int(match.group(1), 0) if match else DEFAULT_VPCD_PORT


def _system_pid() -> int | None:
    try:
        pid = int("".join(ch for ch in SYSTEM_PID_FILE.read_text() if ch.isdigit()))
    except (OSError, ValueError):
        return None
    return pid if _is_pcscd(pid) else None


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _is_pcscd(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.startswith(f"{pid} (pcscd) ") and not stat.startswith(f"{pid} (pcscd) Z")


def listening(port: int) -> bool:
    """Whether something listens on TCP ``port`` (read from /proc, without connecting: a
    connection to a vpcd port would be a card going in)."""
    wanted = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(wanted) and fields[3] == "0A":
                return True
    return False


def free_port_pair() -> int:
    """A port p such that p and p + 1 are both free (the two vpcd slots)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port < 65535 and not listening(port) and not listening(port + 1):
            with socket.socket() as second:
                try:
                    second.bind(("0.0.0.0", port + 1))
                except OSError:
                    continue
            return port
    raise OSError("no two consecutive free TCP ports")


def start_pcscd(
    run_dir: Path,
    mode: Mode = "system",
    *,
    vpcd_port: int | None = None,
    timeout: float = 10.0,
) -> Pcscd:
    """pcscd with the vpcd reader, ready for cards; raises PcscdUnavailable when it cannot be."""
    check_installed()
    run_dir.mkdir(parents=True, exist_ok=True)
    if mode in ("private", "auto"):
        try:
            return _start_private(run_dir, vpcd_port or free_port_pair(), timeout)
        except PcscdUnavailable:
            if mode == "private":
                raise
    return _start_system(run_dir, timeout)


def _start_system(run_dir: Path, timeout: float) -> Pcscd:
    port = system_vpcd_port()
    # Running, or waiting behind systemd's pcscd.socket (it starts at the first client).
    if _system_pid() is not None or _accepts(SYSTEM_SOCKET):
        _wait(lambda: listening(port), None, f"the vpcd reader on port {port}", timeout, None)
        return Pcscd("system", SYSTEM_SOCKET, port, None)
    log = run_dir / "pcscd.log"
    process = _spawn([_pcscd_binary(), "--foreground", "--info"], log)
    pcscd = Pcscd("system", SYSTEM_SOCKET, port, log, process)
    try:
        _wait(lambda: listening(port) and SYSTEM_SOCKET.exists(), process, "pcscd", timeout, log)
    except PcscdUnavailable:
        pcscd.stop()
        raise
    return pcscd


def _start_private(run_dir: Path, port: int, timeout: float) -> Pcscd:
    unshare = shutil.which("unshare")
    if unshare is None:
        raise PcscdUnavailable("unshare is not installed")
    conf = run_dir / "reader.conf.d"
    conf.mkdir(exist_ok=True)
    (conf / "vpcd").write_text(
        'FRIENDLYNAME "Virtual PCD"\n'
        f"DEVICENAME   /dev/null:0x{port:X}\n"
        f"LIBPATH      {VPCD_DRIVER}\n"
        f"CHANNELID    0x{port:X}\n"
    )
    # Short, so the socket path fits in sun_path (108 bytes) wherever the run directory is.
    socket_dir = Path(tempfile.mkdtemp(prefix="sw-pcscd-"))
    socket_dir.chmod(0o755)
    log = run_dir / "pcscd.log"
    script = 'mkdir -p /run/pcscd && mount --bind "$1" /run/pcscd && exec "$2" --foreground --info -c "$3"'
    process = _spawn(
        [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            str(socket_dir),
            _pcscd_binary(),
            str(conf),
        ],
        log,
    )
    pcscd = Pcscd("private", socket_dir / "pcscd.comm", port, log, process, socket_dir)
    try:
        _wait(
            lambda: listening(port) and pcscd.socket.exists(),
            process,
            "private pcscd",
            timeout,
            log,
        )
    except PcscdUnavailable:
        pcscd.stop()
        raise
    return pcscd


def _spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C in the terminal reaches the platform, which stops it.
            start_new_session=True,
        )


def _wait(
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes] | None,
    what: str,
    timeout: float,
    log: Path | None,
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log else []
            raise PcscdUnavailable(f"{what} exited at start: {' / '.join(tail)}")
        if time.monotonic() > deadline:
            raise PcscdUnavailable(f"{what} not ready within {timeout:.0f} s")
        time.sleep(0.05)
