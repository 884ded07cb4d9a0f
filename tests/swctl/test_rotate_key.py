"""`swctl dev rotate-key`: the embedded platform's key file (0600) gets a new key first, the
older ones kept, in the form the accounts service reads."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from singlewindow.accounts.qualifications import parse_keys
from singlewindow.swctl.qualifications import KEY_FILE, ensure_key_file

from tests.support.swctl import Swctl


def test_the_key_file_is_made_once_owner_only(tmp_path: Path) -> None:
    path = ensure_key_file(tmp_path)
    assert path == tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = parse_keys(path.read_text()).current
    assert parse_keys(ensure_key_file(tmp_path).read_text()).current == first


def test_rotate_key_puts_a_new_key_first_and_keeps_the_older(tmp_path: Path) -> None:
    path = ensure_key_file(tmp_path)
    before = parse_keys(path.read_text()).current
    swctl = Swctl("nats://127.0.0.1:1", tmp_path / "config", tmp_path)
    result = swctl("dev", "rotate-key", "--json")
    assert result.code == 0, result.stderr
    answer = json.loads(result.stdout)
    keys = parse_keys(path.read_text())
    assert keys.current == answer["current"] != before
    assert [key_id for key_id, _ in keys.keys] == [answer["current"], before]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
