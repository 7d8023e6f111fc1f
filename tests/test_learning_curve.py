"""Learning curves: the shares, the power-law fit and what it predicts (core), the ``curve`` job
end to end (points nested, one val/test split, resume, cancel), its CLI and its form."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import UserError
from core.learning_curve import fit_power_law, parse_shares, read_curve
from tests.synthetic import make_image_set

ROOT = Path(__file__).resolve().parents[1]

# ---- core: shares and the fit ---------------------------------------------------------------


def test_shares_come_sorted_from_text_or_numbers() -> None:
    assert parse_shares("1, 0.25;0.5") == [0.25, 0.5, 1.0]
    assert parse_shares([0.5, 0.1]) == [0.1, 0.5]
    assert parse_shares("0.01 1") == [0.01, 1.0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.5", "needs 2 to 8 shares, not 1"),
        ([0.1 * i for i in range(1, 10)], "needs 2 to 8 shares, not 9"),
        ("0, 0.5", "between 0.01 and 1"),
        ([0.5, 1.5], "between 0.01 and 1"),
        ("0.5, 0.5", "must differ"),
        ("half, all", "must be numbers"),
        ([True, 0.5], "must be numbers"),
        ("0.5, nan", "between 0.01 and 1"),
    ],
)
def test_bad_shares_are_refused_with_the_reason(value, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_shares(value)


def test_the_fit_recovers_an_exact_power_law() -> None:
    n = [1_000, 2_000, 4_000, 8_000]
    fit = fit_power_law(n, [0.5 * x**-0.4 for x in n])
    assert fit is not None
    assert fit.a == pytest.approx(0.5) and fit.b == pytest.approx(0.4)
    assert fit.rms_log_residual == pytest.approx(0.0, abs=1e-12)
    assert fit.error_at(16_000) == pytest.approx(0.5 * 16_000**-0.4)
    assert fit.images_for(1 - 0.5 * 16_000**-0.4) == pytest.approx(16_000)


def test_the_cifake_curve_of_the_readme_says_what_97_7_percent_needs() -> None:
    """The measured points (9,000 / 18,000 / 36,000 training images; README): n^-0.43, and
    97.7 % needs about 57,000-66,000 images, twice the data (72,000) about 97.8 %."""
    body = read_curve([9_000, 18_000, 36_000], [0.9467, 0.9578, 0.9708], target=0.977)
    assert body["fit"]["b"] == pytest.approx(0.43, abs=0.01)
    assert 57_000 <= body["images_for_target"] <= 66_000
    assert 0.977 <= body["accuracy_at_2x"] <= 0.979
    assert body["verdict"].startswith("the error falls as n^-0.43: twice the data (72,000")
    assert "97.70 % needs about" in body["verdict"] and body["verdict"].endswith(
        "x the largest point"
    )


def test_a_target_already_reached_and_flat_or_perfect_curves_say_so() -> None:
    reached = read_curve([100, 200], [0.90, 0.95], target=0.92)
    assert reached["images_for_target"] < 200 and "within reach" in reached["verdict"]
    flat = read_curve([100, 200, 400], [0.90, 0.89, 0.90], target=0.95)
    assert flat["accuracy_at_2x"] is None and flat["images_for_target"] is None
    assert flat["verdict"].startswith("more data did not lower the error")
    perfect = read_curve([100, 200], [0.99, 1.0])
    assert perfect["fit"] is None and "scored perfectly" in perfect["verdict"]


# ---- the job --------------------------------------------------------------------------------

torch = pytest.importorskip("torch")
TINY = {"arch": "resnet10t", "img_size": 32, "batch_size": 16, "threads": 1, "device": "cpu"}


@pytest.fixture
def curve_data(tmp_path: Path) -> Path:
    return make_image_set(tmp_path / "data", {"real": 30, "sd14": 30})


def run_curve(config: dict, cancel=None):
    from core.events import EventWriter
    from tests.test_training import Collector
    from training.curve import run

    sink = Collector()
    return run(config, EventWriter("test", [sink], max_progress_per_s=0), cancel), sink


def test_curve_trains_nested_shares_on_one_test_split_and_resumes(
    curve_data: Path, tmp_path: Path
) -> None:
    from core.runs import scan_runs

    out = tmp_path / "runs" / "cifake-curve"
    config = {
        "data": str(curve_data),
        "out": str(out),
        "shares": "0.5, 1",
        "target_acc": 0.99,
        "epochs": 1,
        "workspace": str(tmp_path / "ws"),
        **TINY,
    }
    summary, _ = run_curve(config)
    assert not summary["cancelled"]
    body = json.loads((out / "curve.json").read_text())
    assert [p["share"] for p in body["points"]] == [0.5, 1.0]
    assert body["points"][0]["n_train"] * 2 == body["points"][1]["n_train"]
    assert {"verdict", "fit", "target"} <= set(body) and body["target"] == 0.99
    assert summary["points"] == body["points"]
    half, whole = (
        json.loads((out / p["run_dir"] / "split.json").read_text()) for p in body["points"]
    )
    assert half["splits"]["test"] == whole["splits"]["test"]
    assert half["splits"]["val"] == whole["splits"]["val"]
    assert set(half["splits"]["train"]) < set(whole["splits"]["train"])
    for point in body["points"]:
        assert 0.0 <= point["test_acc"] <= 1.0 and point["test_n"] == len(half["splits"]["test"])
        events = (out / point["run_dir"] / "events.jsonl").read_text().splitlines()
        runs = {json.loads(line)["data"]["path"] for line in events if '"artifact"' in line}
        assert runs and all(point["run_dir"] in path for path in runs)  # its own events only
    # the Models page lists the curve's runs
    listed = {run.path.name for run in scan_runs(tmp_path / "runs")}
    assert listed == {"cifake-curve-share-0.5", "cifake-curve-share-1"}
    # resume: finished points are not trained again
    stamp = (out / "cifake-curve-share-1" / "best.safetensors").stat().st_mtime_ns
    again, sink = run_curve({**config, "resume": True})
    logs = [e["data"]["message"] for e in sink.of("log")]
    assert "learning curve point 2 of 2: cifake-curve-share-1 is finished" in logs
    assert (out / "cifake-curve-share-1" / "best.safetensors").stat().st_mtime_ns == stamp
    assert again["points"] == summary["points"]


def test_a_cancelled_curve_keeps_its_points_and_resumes(curve_data: Path, tmp_path: Path) -> None:
    from training.control import CancelToken

    out = tmp_path / "curve"
    config = {
        "data": str(curve_data),
        "out": str(out),
        "shares": [0.5, 1.0],
        "epochs": 1,
        "workspace": str(tmp_path / "ws"),
        **TINY,
    }

    class CancelInPoint2(CancelToken):
        def is_set(self) -> bool:
            return (out / "curve-share-1" / "config.json").is_file()

    first, _ = run_curve(config, CancelInPoint2())
    assert first["cancelled"] and len(first["points"]) == 1
    assert json.loads((out / "curve.json").read_text())["verdict"] == "1 of 2 points trained"
    second, _ = run_curve({**config, "resume": True})
    assert not second["cancelled"] and len(second["points"]) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"shares": [0.5]}, "needs 2 to 8 shares"),
        ({"test": 0.0}, "scores every point on the test split"),
        ({"target_acc": 1.5}, "target_acc must be between"),
        ({"epochs": 0}, "epochs must be between"),
        ({"train_share": 0.5}, "unknown curve option"),
    ],
)
def test_bad_options_fail_before_any_work(curve_data: Path, tmp_path: Path, change, message):
    out = tmp_path / "curve"
    config = {"data": str(curve_data), "out": str(out), **TINY, **change}
    with pytest.raises(UserError, match=message):
        run_curve(config)
    assert not out.exists()


def test_a_used_folder_is_refused_without_resume(curve_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "curve"
    (out / "something").mkdir(parents=True)
    with pytest.raises(UserError, match="is not empty: resume the curve there"):
        run_curve({"data": str(curve_data), "out": str(out), **TINY})


def test_cli_refuses_bad_shares_before_loading_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "curve", "--data", ".", "--shares", "0.5,2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "argument --shares: each share must be between 0.01 and 1" in result.stderr


def test_curve_form_checks_the_shares(qtbot, studio_workspace, curve_data: Path) -> None:
    from app.pages.job_forms import JobForm

    form = JobForm("curve", studio_workspace)
    qtbot.addWidget(form)
    form.set_value("data", str(curve_data))
    assert form.validate(), form.config()
    config = form.config()
    assert config["shares"] == "0.25, 0.5, 1" and config["target_acc"] == 0.0
    form.set_value("shares", "0.5")
    assert not form.validate()
    assert form.error_text("shares") == "⚠ a learning curve needs 2 to 8 shares, not 1"


def test_the_interval_follows_the_test_sets_size() -> None:
    """The same points scored on 4,000 or 400 test images, or practically without error."""
    from core.learning_curve import prediction_interval

    n, acc = [9_000, 18_000, 36_000], [0.946, 0.95575, 0.9708]
    point = read_curve(n, acc, target=0.977)
    exact = prediction_interval(n, acc, [10**9] * 3, target=0.977)
    assert exact["accuracy_at_2x"] == pytest.approx([point["accuracy_at_2x"]] * 2, abs=1e-4)
    assert exact["images_for_target"] == pytest.approx([point["images_for_target"]] * 2, rel=1e-2)
    body = read_curve(n, acc, target=0.977, test_n=[4_000] * 3)
    low, high = body["interval"]["images_for_target"]
    assert low < body["images_for_target"] < high  # measured: 49,000 to 106,000 around 67,000
    assert body["interval"]["level"] == pytest.approx(0.8) and body["interval"]["draws"] == 2000
    assert f"training images ({low:,.0f} to {high:,.0f}), 1.9x the largest" in body["verdict"]
    wide = prediction_interval(n, acc, [200] * 3, target=0.977)
    assert wide["images_for_target"][1] is None  # with 200 test images the curve cannot say
    small, _ = wide["accuracy_at_2x"]
    assert small < body["interval"]["accuracy_at_2x"][0]
