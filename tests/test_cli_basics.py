"""The entry point: usage errors, ``error:`` + exit 2 for bad input, and which workspace is used
(``--workspace`` beats ``DEEPFAKE_STUDIO_HOME``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.__main__ import COMMANDS, build_parser, main
from app.commands import workspace_of
from core.workspace import ENV_VAR
from tests.synthetic import make_image_set

REPO = Path(__file__).resolve().parents[1]


def test_unknown_subcommand_is_a_usage_error_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "app", "frobnicate"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("usage: deepfake-studio")
    assert "invalid choice: 'frobnicate'" in result.stderr
    assert result.stdout == ""


def test_unknown_option_exit_2(capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit) as info:
        main(["index", "--no-such-option", "x"])
    assert info.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def test_every_command_is_registered():
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices  # argparse keeps them here
    assert list(choices) == list(COMMANDS)


def test_user_error_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture):
    missing = tmp_path / "no-such-folder"
    assert main(["--workspace", str(tmp_path / "ws"), "index", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_workspace_of_parsed_arguments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    parser = build_parser()
    assert workspace_of(parser.parse_args(["index", "d"])).root == tmp_path / "env"
    flagged = parser.parse_args(["--workspace", str(tmp_path / "flag"), "index", "d"])
    assert workspace_of(flagged).root == tmp_path / "flag"


def _index_into(args: list[str], data: Path, capsys: pytest.CaptureFixture) -> dict:
    assert main([*args, "index", str(data), "--workers", "1", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_workspace_flag_and_environment_are_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    data = make_image_set(tmp_path / "data", {"real": 2, "fake": 2}, size=(16, 16))
    env_ws, flag_ws = tmp_path / "env-ws", tmp_path / "flag-ws"
    monkeypatch.setenv(ENV_VAR, str(env_ws))

    from_env = _index_into([], data, capsys)
    assert Path(from_env["index"]).is_relative_to(env_ws / "indexes")
    assert from_env["files"] == 4

    from_flag = _index_into(["--workspace", str(flag_ws)], data, capsys)
    assert Path(from_flag["index"]).is_relative_to(flag_ws / "indexes")
    assert not (flag_ws / "indexes").samefile(env_ws / "indexes")


def test_closed_stdout_pipe_exits_quietly(tmp_path: Path):
    data = make_image_set(tmp_path / "data", {"real": 2, "fake": 2}, size=(16, 16))
    command = [sys.executable, "-m", "app", "--workspace", str(tmp_path / "ws"), "index"]
    process = subprocess.Popen(
        [*command, str(data), "--workers", "1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdout.close()  # like `| head` exiting before the command prints
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 141
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr


@pytest.mark.parametrize("command", ["train", "prune", "distill", "export", "evaluate", "report"])
def test_every_torch_job_command_takes_threads_into_its_job_config(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``--threads 1`` (for a job sharing the cores) reaches the job's config."""
    import app.commands.jobcli as jobcli

    seen: dict = {}

    def capture(config: dict, workspace, *args, **kwargs) -> dict:
        seen.update(config)
        raise SystemExit(0)

    monkeypatch.setattr(jobcli, "run_job_in_process", capture)
    required = {
        "train": ["--data", "d", "--out", "o"],
        "prune": ["--run", "r", "--out", "o"],
        "distill": ["--teacher", "t", "--arch", "resnet18", "--data", "d", "--out", "o"],
        "export": ["--run", "r", "--out", "o"],
        "evaluate": ["--model", "m", "--data", "d"],
        "report": ["--data", "d", "--models", "m", "--out", "r.html"],
    }[command]
    with pytest.raises(SystemExit):
        main([command, *required, "--threads", "1"])
    assert seen["kind"] in (command, "finetune") and seen["threads"] == 1


def test_train_takes_the_monitor_that_picks_the_best_epoch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--monitor val_macro_f1`` reaches the job; the CLI and form offer the loop's monitors
    (and its outlier losses)."""
    import app.commands.jobcli as jobcli
    from app.commands.train import MONITOR_CHOICES, OUTLIER_LOSS_CHOICES
    from training.config import FINETUNE_DEFAULTS
    from training.loop import MONITORS, OUTLIER_LOSSES, FitSettings

    assert set(MONITOR_CHOICES) == set(MONITORS)
    assert set(OUTLIER_LOSS_CHOICES) == set(OUTLIER_LOSSES)
    assert OUTLIER_LOSS_CHOICES[0] == FINETUNE_DEFAULTS["outlier_loss"]
    assert MONITOR_CHOICES[0] == FINETUNE_DEFAULTS["monitor"] == FitSettings().monitor
    seen: dict = {}

    def capture(config: dict, workspace, *args, **kwargs) -> dict:
        seen.update(config)
        raise SystemExit(0)

    monkeypatch.setattr(jobcli, "run_job_in_process", capture)
    for argv, expected in (([], "val_macro_f1"), (["--monitor", "val_acc"], "val_acc")):
        with pytest.raises(SystemExit):
            main(["train", "--data", "d", "--out", "o", *argv])
        assert seen["monitor"] == expected


def test_console_progress_prints_work_done_but_no_empty_phase() -> None:
    import io

    from app.console import ConsoleEvents
    from core.events import Event

    stream = io.StringIO()
    console = ConsoleEvents(stream)
    console(Event("progress", "cli", data={"phase": "index", "done": 0, "total": 0}))
    assert stream.getvalue() == ""  # an index already up to date: no "index 0/0" line
    console(Event("progress", "cli", data={"phase": "evaluate", "done": 30, "total": 30}))
    assert stream.getvalue() == "  evaluate 30/30\n"
