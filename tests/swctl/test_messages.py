"""The development notifier's file and `swctl dev messages`: one line per message, written once,
owner only; read back newest last, by number in any spelling."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from singlewindow.swctl.messages import read_messages
from singlewindow.swctl.notifier import append_line, messages_file, record_of, seen_ids

from tests.support.swctl import Swctl


def message(event_id: str, to: str, text: str) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "time": "2026-12-02T10:00:00Z",
            "data": {"to": to, "kind": "mobile_change", "text": text, "account": "li_si"},
        }
    ).encode()


def test_the_notifier_writes_owner_only_lines_and_knows_what_it_wrote(tmp_path: Path) -> None:
    path = messages_file(tmp_path)
    append_line(path, record_of(message("e1", "13800138000", "code 123456")))
    append_line(path, record_of(message("e2", "13700137000", "code 654321")))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert seen_ids(path) == {"e1", "e2"}
    assert [m["text"] for m in read_messages(tmp_path)] == ["code 123456", "code 654321"]
    assert [m["id"] for m in read_messages(tmp_path, "13700137000")] == ["e2"]


def test_dev_messages_filters_by_number_in_any_spelling(tmp_path: Path) -> None:
    path = messages_file(tmp_path)
    append_line(path, record_of(message("e1", "13800138000", "code 123456")))
    with path.open("a") as handle:
        handle.write('{"cut short')  # a crash mid-line is skipped, not fatal
    append_line(path, record_of(message("e2", "13800138000", "code 222222")))
    swctl = Swctl("nats://127.0.0.1:1", tmp_path / "config", tmp_path)
    found = swctl("dev", "messages", "--to", "+86 138-0013-8000", "--json")
    assert found.code == 0, found.stderr
    assert [m["id"] for m in found.json()] == ["e1", "e2"]
    plain = swctl("dev", "messages")
    assert "code 123456" in plain.stdout
    none = swctl("dev", "messages", "--to", "13900000000")
    assert (none.code, none.stdout) == (0, "")
    assert "no messages to 13900000000" in none.stderr
