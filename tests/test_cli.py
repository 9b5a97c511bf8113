"""The ``pyro-groups exam-scores`` command in smoke mode: JSON in the DESIGN format, and figures."""
import contextlib
import io
import json
import re

import pytest

from pyro_groups.cli import build_parser, main
from pyro_groups.experiments.exam_scores_report import PAPER

ROWS = [
    "cxvae", "mlvae", "gvae", "gvae-reg", "cxvae-u-average", "cxvae-u-product",
    "cxvae-v-unconditional", "cxvae-reg-none", "cxvae-reg-unconditional",
]
METRICS = ["rec_err", "trans_err", "u_pred_err", "v_pred_err"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("exam_scores")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["exam-scores", "--smoke-test", "--out", str(out), "--no-progress"])
    return code, out, printed.getvalue()


def test_returns_zero_and_writes_files(smoke_run):
    code, out, _ = smoke_run
    assert code == 0
    for name in ("results.json", "translation.png", "errors_by_epoch.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for name in ("translation.png", "errors_by_epoch.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_json_format(smoke_run):
    _, out, _ = smoke_run
    result = json.loads((out / "results.json").read_text())
    assert result["benchmark"] == "exam_scores"
    assert set(result["environment"]) == {"torch", "pyro", "device", "threads"}
    assert result["environment"]["device"] == "cpu"
    assert isinstance(result["environment"]["threads"], int)
    cfg = result["config"]
    assert cfg["seeds"] == 1 and cfg["epochs"] >= 1
    rows = {r["model"]: r for r in result["results"]}
    assert list(rows) == ROWS
    for name, row in rows.items():
        for m in METRICS:
            cell = row[m]
            assert set(cell) == {"mean", "std", "n"}, (name, m)
            assert cell["n"] == cfg["seeds"] and cell["std"] == 0.0  # one seed
            assert cell["mean"] >= 0 and cell["mean"] == cell["mean"]  # finite, not NaN
        # curves: [seeds][epochs] per metric, and the loss
        for m in METRICS + ["loss"]:
            assert len(row["curves"][m]) == cfg["seeds"]
            assert all(len(seed) == cfg["epochs"] for seed in row["curves"][m])
        # the paper's numbers beside ours
        assert set(row["paper"]) == set(METRICS)
        for m in METRICS:
            assert row["paper"][m] == {"mean": PAPER[name][m][0], "std": PAPER[name][m][1], "n": 7}
    assert isinstance(result["findings"], list) and result["findings"]
    assert all(set(f) == {"claim", "reproduced", "beyond_noise"} for f in result["findings"])


def test_prints_the_table(smoke_run):
    _, _, text = smoke_run
    table = text[text.index("model") :]
    assert all(m in table for m in METRICS)
    assert all(f"\n{name} " in table for name in ROWS)
    assert "paper" in table and "results.json" in text
    assert re.search(r"wall \d+ s, \d+ CPU-s", text)


def test_rows_option():
    args = build_parser().parse_args(["exam-scores", "--rows", "gvae", "cxvae", "--epochs", "3"])
    assert args.rows == ["gvae", "cxvae"] and args.epochs == 3 and not args.smoke_test


def test_parser_rejects_unknown_commands():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["no-such-command"])


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "--epochs: must be >= 1"),
    (["--seeds", "0"], "--seeds: must be >= 1"),
    (["--last", "0"], "--last: must be >= 1"),
    (["--last", "-1"], "--last: must be >= 1"),
    (["--device", "banana"], "'banana' is not a device torch knows"),
    (["--device", "meta"], "holds no data"),
    (["--rows", "nope"], "invalid choice: 'nope'"),
    (["--out", "setup.cfg"], "is an existing file, not a folder"),
    (["--epochs", "2", "--last", "5"], "--last 5 exceeds the 2 epochs"),
])
def test_bad_flags_fail_before_any_work(flags, message, capsys, monkeypatch):
    import pyro_groups.experiments.exam_scores as ex

    monkeypatch.setattr(ex, "run", lambda *a, **k: pytest.fail("trained despite a bad flag"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(SystemExit) as info:
        main(["exam-scores", *flags])
    assert info.value.code != 0
    assert message in capsys.readouterr().err + str(info.value.code)


def test_cuda_without_cuda_fails_before_any_work(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit):
        main(["exam-scores", "--device", "cuda"])
    assert "CUDA is not available" in capsys.readouterr().err


def test_version_and_rows_in_help(capsys):
    from pyro_groups import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and __version__ in capsys.readouterr().out
    text = build_parser()._subparsers._group_actions[0].choices["exam-scores"].format_help()
    squeezed = "".join(text.split())  # argparse wraps long lines
    assert all(row in squeezed for row in ROWS)
