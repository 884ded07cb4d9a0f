"""swctl as a new user meets it, without a platform: options, errors, files, pipes, start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from singlewindow.contracts.review import TaskList, TaskState, TaskView
from singlewindow.swctl import main
from singlewindow.swctl.main import parse, print_task_list

from tests.support.platform import free_port
from tests.support.swctl import Result, Swctl


@pytest.fixture
def closed_url() -> str:
    """A NATS URL nothing listens on."""
    return f"nats://127.0.0.1:{free_port()}"


def with_staff_session(config_dir: Path) -> Path:
    """A saved staff session, so that review commands go as far as the bus."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "staff-session.json").write_text(json.dumps({"token": "staff-token"}))
    return config_dir


@pytest.fixture
def swctl(tmp_path: Path, closed_url: str) -> Swctl:
    return Swctl(closed_url, tmp_path / "swctl")


def no_traceback(result: Result) -> None:
    assert "Traceback" not in result.stderr, result.stderr


def one_json_error(result: Result, code: str) -> None:
    """stdout is exactly one JSON document: the error."""
    document = json.loads(result.stdout)
    assert set(document) == {"error"}, document
    assert document["error"]["code"] == code, document


@pytest.mark.parametrize(
    "line",
    [
        ["--json", "--nats-url", "nats://elsewhere:4222", "--timeout", "2.5", "review", "list"],
        ["review", "list", "--json", "--nats-url", "nats://elsewhere:4222", "--timeout", "2.5"],
        ["--json", "review", "list", "--timeout", "2.5", "--nats-url", "nats://elsewhere:4222"],
        ["--timeout", "2.5", "review", "list", "--json", "--nats-url", "nats://elsewhere:4222"],
    ],
)
def test_global_options_mean_the_same_before_or_after_the_command(line: list[str]) -> None:
    args = parse(line)
    assert args is not None
    assert (args.command, args.json, args.nats_url, args.timeout) == (
        "review list",
        True,
        "nats://elsewhere:4222",
        2.5,
    )


def test_global_options_left_out_take_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SW_NATS_URL", raising=False)
    args = parse(["review", "list"])
    assert args is not None
    assert (args.json, args.nats_url, args.nats_url_given, args.timeout) == (
        False,
        "nats://127.0.0.1:4222",
        False,
        10.0,
    )
    monkeypatch.setenv("SW_NATS_URL", "nats://from-env:4222")
    args = parse(["status"])
    assert args is not None
    assert (args.nats_url, args.nats_url_given) == ("nats://from-env:4222", True)


def test_nats_url_before_the_command_is_the_one_swctl_reaches(swctl: Swctl) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    with_staff_session(swctl.config_dir)
    result = swctl("--nats-url", url, "--json", "review", "list")
    assert result.code == 3
    assert url in json.loads(result.stdout)["error"]["message"]
    assert swctl.nats_url not in result.stderr


def test_errors_with_json_are_one_json_document(swctl: Swctl) -> None:
    no_staff_session = swctl("review", "list", "--json")
    assert no_staff_session.code == 1
    one_json_error(no_staff_session, "unauthenticated")
    with_staff_session(swctl.config_dir)
    unreachable = swctl("review", "list", "--json")
    assert unreachable.code == 3
    one_json_error(unreachable, "unreachable")
    not_logged_in = swctl("--json", "whoami")
    assert not_logged_in.code == 1
    one_json_error(not_logged_in, "unauthenticated")
    for usage in (["--json", "no-such-command"], ["review", "list", "--limit", "x", "--json"]):
        result = swctl(*usage)
        assert result.code == 2
        one_json_error(result, "usage")
        assert "usage:" in result.stderr
    missing = swctl("--json", "register", "cardless", "--file", "/no/such/file.json")
    assert missing.code == 2
    one_json_error(missing, "usage")


def test_json_and_jsonl_together_are_a_usage_error(swctl: Swctl) -> None:
    result = swctl("events", "tail", "--json", "--jsonl")
    assert result.code == 2
    one_json_error(result, "usage")


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"enterprise": {}}'.encode("utf-16"), "is UTF-16 text; save it as UTF-8"),
        ('{"enterprise": {}}'.encode("utf-16-le"), "is not UTF-8 text"),
        (bytes(range(256)) * 4, "is not UTF-8 text"),
        (b'{"name": "\xe9t\xe9"}', "is not UTF-8 text"),
        (b"[" * 100_000, "larger than"),
        (b"[" * 60_000, "nested too deeply"),
        (b'{"n": ' + b"9" * 5000 + b"}", "is not valid JSON"),
        (b"[1, 2]", "must hold a JSON object"),
    ],
)
def test_a_file_that_is_not_utf8_json_gets_a_plain_message(
    swctl: Swctl, tmp_path: Path, content: bytes, says: str
) -> None:
    result = swctl("register", "cardless", "--file", write(tmp_path, "app.json", content))
    no_traceback(result)
    assert result.code == 2, result.stderr
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_utf8_file_with_a_bom_is_read(swctl: Swctl, tmp_path: Path) -> None:
    path = write(tmp_path, "app.json", b'\xef\xbb\xbf{"enterprise": {}}')
    result = swctl("register", "cardless", "--file", path)
    # Read and sent: only the missing platform stops it.
    assert result.code == 3, result.stderr
    assert "unreachable" in result.stderr


def test_a_9_mb_file_is_refused_before_it_is_read(swctl: Swctl, tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(9 * 1024 * 1024)
    result = swctl("--json", "register", "cardless", "--file", str(path))
    no_traceback(result)
    assert result.code == 2
    one_json_error(result, "usage")
    assert "larger than 65536 bytes" in result.stderr


def test_stdin_is_read_only_up_to_the_limit(swctl: Swctl) -> None:
    result = swctl("register", "cardless", "--file", "-", stdin="x" * (9 * 1024 * 1024))
    no_traceback(result)
    assert result.code == 2
    assert "stdin is larger than 65536 bytes" in result.stderr


@pytest.mark.parametrize("content", [b"[1]", b"{not json", b"\xff\xfe\x00garbage", b'{"token": 7}'])
def test_a_damaged_session_file_is_said_plainly_and_logout_removes_it(
    swctl: Swctl, content: bytes
) -> None:
    swctl.config_dir.mkdir(parents=True)
    session = swctl.config_dir / "session.json"
    session.write_bytes(content)
    shown = swctl("whoami")
    no_traceback(shown)
    assert shown.code == 1
    assert f"the session file {session} is damaged" in shown.stderr
    logout = swctl("logout")
    assert logout.code == 0, logout.stderr
    assert "removed the damaged session file" in logout.stdout
    assert not session.exists()


def test_an_application_swctl_keeps_no_claim_secret_of_is_not_asked_about(swctl: Swctl) -> None:
    shown = swctl("registration", "show", "app_abcdefgh1234")
    no_traceback(shown)
    assert shown.code == 2
    assert "no claim secret of app_abcdefgh1234 kept in" in shown.stderr
    assert "--claim-secret-stdin" in shown.stderr
    both = swctl("register", "resubmit", "app_abcdefgh1234", "--file", "-", "--claim-secret-stdin")
    assert both.code == 2
    assert "--file - and --claim-secret-stdin cannot both read stdin" in both.stderr


def test_a_damaged_claim_secret_file_is_said_plainly(swctl: Swctl) -> None:
    kept = swctl.config_dir / "applications" / "app_abcdefgh1234.json"
    kept.parent.mkdir(parents=True)
    kept.write_text("{not json")
    shown = swctl("registration", "show", "app_abcdefgh1234")
    no_traceback(shown)
    assert shown.code == 1
    assert f"the claim secret file {kept} is damaged" in shown.stderr


def test_logout_without_a_session_says_so_and_succeeds(swctl: Swctl) -> None:
    result = swctl("logout")
    assert result.code == 0
    assert result.stdout.startswith("not logged in")
    as_json = swctl("logout", "--json")
    assert as_json.code == 0
    assert json.loads(as_json.stdout)["logged_out"] is False


@pytest.mark.parametrize("command", [["status"], ["--help"], ["review", "list", "--json"]])
def test_a_closed_stdout_ends_swctl_quietly(
    tmp_path: Path, closed_url: str, command: list[str]
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "singlewindow.swctl", *command],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ
            | {
                "SW_NATS_URL": closed_url,
                "SW_DATA_DIR": str(tmp_path),
                "SWCTL_CONFIG_DIR": str(with_staff_session(tmp_path / "swctl")),
            },
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in completed.stderr, completed.stderr
    assert "BrokenPipeError" not in completed.stderr, completed.stderr
    assert completed.returncode in (0, 141), completed.returncode
    if command == ["status"]:
        assert completed.returncode == 141


def test_an_unexpected_failure_is_one_plain_line_and_exit_code_4(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("something nobody expected")

    monkeypatch.setitem(main.COMMANDS, "whoami", broken)
    monkeypatch.delenv(main.DEBUG_VARIABLE, raising=False)
    assert main.run(["whoami", "--json"]) == 4
    out, err = capsys.readouterr()
    assert err.count("\n") == 1
    assert "unexpected error (RuntimeError: something nobody expected)" in err
    assert "Traceback" not in err
    assert json.loads(out)["error"]["code"] == "internal"


def test_the_review_list_is_one_line_per_task_and_says_the_total(
    capsys: pytest.CaptureFixture[str],
) -> None:
    created = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    tasks = tuple(
        TaskView(
            task_id=f"task_{n:012d}",
            kind="cardless",
            reference=f"app_{n:012d}",
            application_id=f"app_{n:012d}",
            uscc="91500000MA5U7X1C69",
            enterprise_name="重庆某某贸易有限公司",
            attempt=1,
            state=TaskState.OPEN,
            created_at=created,
            due_by=created + timedelta(days=3),
            overdue=False,
            decision=None,
            reason=None,
            reviewer=None,
            decided_at=None,
            submission={"secret_detail": "only in review show"},
            assignee="li" if n else None,
        )
        for n in range(2)
    )
    args = parse(["review", "list", "--limit", "2", "--offset", "4"])
    assert args is not None
    print_task_list(TaskList(tasks=tasks, total=9), args)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["TASK", "STATE", "DUE", "(UTC)", "ASSIGNEE"]
    assert [line.split()[0] for line in lines[1:3]] == ["task_000000000000", "task_000000000001"]
    assert "2026-03-05 09:30" in lines[1]
    assert (lines[1].split()[4], lines[2].split()[4]) == ("-", "li")
    assert lines[3] == "tasks 5-6 of 9; the next page: --offset 6"
    assert len(lines) == 4
    assert "secret_detail" not in "\n".join(lines)


def test_swctl_starts_without_the_server_stack() -> None:
    probe = (
        "import sys\n"
        "import singlewindow.swctl.main as m\n"
        "m.build_parser()\n"
        "heavy = ('faststream', 'sqlalchemy', 'structlog', 'prometheus_client', 'asn1crypto',"
        " 'nats', 'pydantic')\n"
        "print([name for name in sys.modules if name.split('.')[0] in heavy])\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.strip() == "[]", completed.stdout


def test_a_request_imports_the_contracts_but_not_the_server_stack() -> None:
    probe = (
        "import sys\n"
        "import singlewindow.swctl.client, singlewindow.contracts.accounts\n"
        "import singlewindow.contracts.review, singlewindow.contracts.registration\n"
        "heavy = ('faststream', 'sqlalchemy', 'structlog', 'prometheus_client', 'asn1crypto')\n"
        "print([name for name in sys.modules if name.split('.')[0] in heavy])\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.strip() == "[]", completed.stdout
