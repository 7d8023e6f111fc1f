"""A real 1-epoch fine-tune started from the Jobs page: `deepfake-studio job` in a QProcess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic import make_image_set

from app.pages.jobs import PROGRESS_STEPS, JobsPage
from app.pages.models import COLUMNS, ModelsPage

pytestmark = pytest.mark.slow

TIMEOUT_MS = 180_000


def test_real_finetune_through_the_gui_runner(qtbot, studio_workspace, tmp_path):
    data = make_image_set(tmp_path / "data", {"real": 16, "fake": 16}, size=(32, 32))
    page = JobsPage(studio_workspace)
    qtbot.addWidget(page)
    page.show()
    events: list = []
    page.queue.sig_event_received.connect(lambda _job, event: events.append(event))
    form = page.new_job("finetune")
    form.set_values(
        {
            "data": str(data),
            "arch": "resnet10t",
            "img_size": 32,
            "epochs": 1,
            "batch_size": 16,
            "lr": 0.003,
        }
    )
    assert form.validate(), {f.key: form.error_text(f.key) for f in form.fields}
    out = Path(form.value("out"))
    with qtbot.waitSignal(page.sig_job_finished, timeout=TIMEOUT_MS) as blocker:
        page.submit({**form.config(), "threads": 1})
    record = blocker.args[0]
    assert record.status == "done", record.summary

    assert events[-1].type == "done"
    assert events[-1].data["run_dir"] == str(out)
    assert events[-1].data["cancelled"] is False
    assert [e.epoch for e in events if e.type == "metric"] == [1]
    assert page.progress.value() == PROGRESS_STEPS
    x, y = page.curve_data("val_acc")
    assert x.tolist() == [1.0] and 0.0 <= y[0] <= 1.0

    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert (run["kind"], run["status"], run["arch"]) == ("finetune", "done", "resnet10t")
    for name in ("config.json", "model.json", "best.safetensors", "metrics.csv", "events.jsonl"):
        assert (out / name).is_file(), name

    models = ModelsPage(studio_workspace)
    qtbot.addWidget(models)
    with qtbot.waitSignal(models.sig_runs_loaded, timeout=10_000) as loaded:
        pass
    assert loaded.args == [1]
    item = models.tree.topLevelItem(0)
    columns = {key: item.text(i) for i, (key, _) in enumerate(COLUMNS)}
    assert columns["name"] == out.name and columns["arch"] == "resnet10t"
    assert columns["epochs"] == "1" and columns["params"].endswith(" M")
    assert columns["accuracy"] != ""

    # Its quality report, asked for on the Models page and run by the Jobs page's runner.
    models.select_paths([out])
    with qtbot.waitSignal(models.sig_new_job_requested) as asked:
        models.job_buttons["report"].click()
    kind, values = asked.args
    assert (kind, values) == ("report", {"models": [str(out)], "data": str(data), "split": "test"})
    form = page.new_job(kind, values)
    form.set_values({"robustness_images": 8})
    assert form.validate(), {f.key: form.error_text(f.key) for f in form.fields}
    report = Path(form.value("out"))
    with qtbot.waitSignal(page.sig_job_finished, timeout=TIMEOUT_MS) as blocker:
        page.submit({**form.config(), "threads": 1})
    assert blocker.args[0].status == "done", blocker.args[0].summary
    assert report.is_file() and report.with_suffix(".json").is_file()
    assert page.open_button.text() == "Open report" and page.open_button.isEnabled()
    panel = models.reports_panel
    models.refresh()
    qtbot.waitUntil(lambda: panel.tree.topLevelItemCount() == 1, timeout=10_000)
    top = panel.tree.topLevelItem(0)
    assert top.text(0) == report.stem and top.text(2) == f"{data.name} (test)"
    assert top.child(0).text(0) == out.name and top.child(0).text(3).endswith("%")
