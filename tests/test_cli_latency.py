"""``nas latency`` from the command line: import, predict, show, and one-line errors."""

from __future__ import annotations

import pytest

from .test_cli import run
from .test_latency import OFA_MBV3


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


SPEC_TEXT = """arch phone-net input=32 classes=10 width=1.0
stem conv_k3_s2_c16_nhs
stage ir_k3_s2_x48_c24_nre ir_k5_s1_x96_c24_se_nhs
head conv_c960_nhs fc_c1280_nhs drop0.2
"""


def test_import_ofa_then_predict_and_show(capsys, in_tmp):
    (in_tmp / "phone.yaml").write_text(OFA_MBV3.replace("output:10", "output:10"))
    (in_tmp / "net.txt").write_text(SPEC_TEXT)
    code, out, err = run(["latency", "import-ofa", "phone.yaml", "--out", "phone.json"], capsys)
    assert code == 0, err
    assert "imported 4 entries" in out
    # An imported table is the phone's: used as it is, never re-profiled on this host.
    code, out, err = run(["latency", "predict", "net.txt", "--table", "phone.json",
                          "--no-profile"], capsys)
    assert code == 0, err
    assert "3.50" in out  # 0.5 + 1.25 + 0.75 + (0.25 + 0.125 + 0.5 + 0.125)
    code, out, err = run(["latency", "net.txt", "--table", "phone.json"], capsys)
    assert code == 0, err
    assert "predicted: 3.50 ms" in out and "35.7%" in out  # the 1.25 ms block
    code, out, err = run(["latency", "predict", "v3-small", "--table", "phone.json"], capsys)
    assert code == 2 and "not in the imported table" in err


def test_missing_table_under_no_profile_is_one_line(capsys, in_tmp):
    (in_tmp / "net.txt").write_text(SPEC_TEXT)
    for args in (["latency", "net.txt", "--no-profile"],
                 ["latency", "predict", "net.txt", "--no-profile"]):
        code, out, err = run(args, capsys)
        assert code == 2, args
        assert "no latency table for this device" in err
        assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["latency", "profile", "--backend", "tpu"], "unknown latency backend 'tpu'"),
        (["latency", "profile", "--threads", "0"], "--threads and --batch must be at least 1"),
        (["latency", "import-ofa", "nothing.yaml"], "nothing.yaml: no such file"),
        (["latency", "nosuchmodel"], "is neither a file nor a zoo model"),
    ],
)
def test_latency_mistakes(capsys, args, words):
    code, out, err = run(args, capsys)
    assert code == 2
    assert words in err
    assert len(err.strip().splitlines()) == 1
