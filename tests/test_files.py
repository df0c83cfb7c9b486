"""imsnb.files.write_atomic: the one temp-file + fsync + rename helper (archive index, notify state, summaries)."""

from __future__ import annotations

import stat

import pytest

from imsnb.files import write_atomic


def test_write_atomic_replaces_the_file_whole_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "index.html"
    target.write_text("old")
    assert write_atomic(target, "new ✓") == target
    assert target.read_text(encoding="utf-8") == "new ✓"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["index.html"]


def test_write_atomic_keeps_a_private_mode_when_asked(tmp_path):
    target = write_atomic(tmp_path / ".notify-state.json", "{}", mode=0o600)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(target, "\udcff")  # a lone surrogate cannot be encoded: the write fails half way
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_missing_folder_is_an_error_and_writes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "nowhere" / "index.html", "x")
    assert list(tmp_path.iterdir()) == []
