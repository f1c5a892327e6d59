"""The suite never touches the user's home: a full CLI run under it writes its caches into the
session's temporary home (conftest.py), and the user's cache is left exactly as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import snapshot, user_cache_dir

BIN = Path(sys.executable).parent


def test_the_session_points_every_cache_at_a_temporary_home(user_cache):
    path, _ = user_cache
    home = Path(os.environ["HOME"])
    assert home != Path(os.path.expanduser("~root")) or home.name.startswith("nas-tests-home-")
    assert user_cache_dir() == home / ".cache" / "nas" != path
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "MPLCONFIGDIR", "TORCH_HOME"):
        assert Path(os.environ[name]).is_relative_to(home), name


def test_a_full_search_from_the_cli_leaves_the_users_cache_untouched(user_cache, tmp_path):
    path, before = user_cache
    session_cache = Path(os.environ["NAS_CACHE_DIR"])
    result = subprocess.run(
        [str(BIN / "nas-search"), "--budget", "60ms", "--trials", "2", "--supernet-steps", "3",
         "--finetune-steps", "2", "--no-recalibrate", "--workers", "1", "--runs-dir",
         str(tmp_path), "--name", "hermetic"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "hermetic" / "best.json").is_file()
    # the run trained and cached its supernet, in the session's cache and nowhere else
    assert list((session_cache / "supernets").glob("*3steps*.pt"))
    assert snapshot(path) == before
