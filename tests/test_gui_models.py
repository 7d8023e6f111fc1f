"""The Models page: lineage tree from run folders, curve overlay, actions (pytest-qt)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox
from run_factory import make_bundle, make_run

from app.pages.models import COLUMNS, ModelsPage

TIMEOUT_MS = 10_000
COLUMN = {key: index for index, (key, _) in enumerate(COLUMNS)}


@pytest.fixture
def runs(studio_workspace):
    root, bundles = studio_workspace.runs, studio_workspace.bundles
    ft = make_run(
        root,
        "r1-finetune",
        "finetune",
        created="2026-11-23T10",
        summary={
            "test_acc": 0.912,
            "test_macro_f1": 0.905,
            "test_auc": 0.97,
            "test_ece": 0.041,
            "params": 1_520_000,
            "macs": 56_000_000,
            "size_bytes": 6_100_000,
            "epochs_run": 3,
        },
        metrics=[{"epoch": e, "val_loss": 1.0 / e, "val_acc": 0.5 + 0.1 * e} for e in (1, 2, 3)],
    )
    pruned = make_run(
        root,
        "r2-prune",
        "prune",
        parent=str(ft),
        created="2026-11-23T11",
        metrics=[
            {
                "step": s,
                "val_loss": 0.5 + 0.1 * s,
                "val_acc": 0.9 - 0.05 * s,
                "params": 1e6 / s,
                "macs": 4e7 / s,
            }
            for s in (1, 2)
        ],
    )
    exported = make_run(root, "r3-export", "export", parent="r2-prune", created="2026-11-23T12")
    make_bundle(exported, ".", "r2-prune", accuracy=0.8)  # bundle.json inside the export run
    bundle = make_bundle(bundles, "b1-int8", "r3-export", accuracy=0.79)
    other = make_run(root, "r0-other", "finetune", created="2026-11-23T09")
    return {"ft": ft, "pruned": pruned, "exported": exported, "bundle": bundle, "other": other}


@pytest.fixture
def page(qtbot, studio_workspace, runs) -> ModelsPage:
    widget = ModelsPage(studio_workspace)
    qtbot.addWidget(widget)
    # the scan result arrives through the event loop, so connecting after construction is safe
    with qtbot.waitSignal(widget.sig_runs_loaded, timeout=TIMEOUT_MS):
        pass
    widget.resize(1300, 800)
    widget.show()
    return widget


def rows(page: ModelsPage) -> list[tuple[int, str]]:
    """(depth, name) of every row, depth-first."""
    found = []

    def visit(item, depth):
        found.append((depth, item.text(0)))
        for i in range(item.childCount()):
            visit(item.child(i), depth + 1)

    for i in range(page.tree.topLevelItemCount()):
        visit(page.tree.topLevelItem(i), 0)
    return found


def item_named(page: ModelsPage, name: str):
    return next(i for i in page._items() if i.text(0) == name)


def test_tree_follows_lineage_with_recorded_numbers(page):
    assert rows(page) == [
        (0, "r0-other"),
        (0, "r1-finetune"),
        (1, "r2-prune"),
        (2, "r3-export"),
        (3, "b1-int8"),
    ]
    ft = item_named(page, "r1-finetune")
    texts = {key: ft.text(index) for key, index in COLUMN.items()}
    assert texts == {
        "name": "r1-finetune",
        "kind": "Fine-tune",
        "arch": "resnet10t",
        "data": "faces",
        "epochs": "3",
        "params": "1.52 M",
        "macs": "56 M",
        "size": "5.8 MiB",
        "accuracy": "0.912",
        "f1": "0.905",
        "auc": "0.970",
        "ece": "0.041",
        "latency": "",
    }
    pruned = item_named(page, "r2-prune")
    assert pruned.text(COLUMN["params"]) == "500 k" and pruned.text(COLUMN["accuracy"]) == "0.800"
    bundle = item_named(page, "b1-int8")
    assert bundle.text(COLUMN["kind"]) == "Bundle (int8)"
    assert bundle.text(COLUMN["latency"]) == "3.2 ms"  # 3.25 rounds half to even
    # nothing recorded -> blank cells, not zeros
    other = item_named(page, "r0-other")
    assert [other.text(COLUMN[k]) for k in ("accuracy", "f1", "params", "latency")] == [""] * 4
    assert not page.empty_label.isVisible()
    header = page.tree.headerItem()  # which figure a column holds is one hover away
    assert "calibrated temperature" in header.toolTip(COLUMN["ece"])
    assert "validation figures where it has none" in header.toolTip(COLUMN["accuracy"])


def test_name_column_fits_the_names_so_every_figure_shows(qtbot, page, runs):
    from app.pages.models import NAME_WIDTH

    tree = page.tree
    width = tree.columnWidth(0)
    assert tree.sizeHintForColumn(0) <= width == max(NAME_WIDTH[0], tree.sizeHintForColumn(0) + 16)
    assert width < NAME_WIDTH[1]  # the short names here need less than the old fixed 300 px
    figures = sum(tree.columnWidth(c) for c in range(1, len(COLUMNS)))
    assert width + figures <= tree.viewport().width(), "the ECE and latency columns show"
    tree.setColumnWidth(0, 250)  # the user's width survives a refresh
    with qtbot.waitSignal(page.sig_runs_loaded, timeout=TIMEOUT_MS):
        page.refresh()
    assert tree.columnWidth(0) == 250


def test_selecting_two_runs_overlays_their_val_curves(qtbot, page, runs):
    page.select_paths([runs["ft"], runs["pruned"]])
    qtbot.waitUntil(lambda: len(page.overlay_curves["val_acc"]) == 2, timeout=TIMEOUT_MS)
    ft_curve = page.overlay_curves["val_acc"][str(runs["ft"])]
    x, y = ft_curve.getData()
    np.testing.assert_allclose(x, [1, 2, 3])
    np.testing.assert_allclose(y, [0.6, 0.7, 0.8])
    pruned_x, pruned_y = page.overlay_curves["val_loss"][str(runs["pruned"])].getData()
    np.testing.assert_allclose(pruned_x, [1, 2])  # pruned runs are per step
    np.testing.assert_allclose(pruned_y, [0.6, 0.7])
    # different colours for different runs
    colours = {c.opts["pen"]["color"] for c in page.overlay_curves["val_acc"].values()}
    assert len(colours) == 2
    # two selected: single-run actions are off
    assert not page.delete_button.isEnabled() and not page.use_button.isEnabled()

    page.select_paths([runs["other"]])  # no metrics.csv: nothing to draw
    qtbot.waitUntil(lambda: page.overlay_curves["val_acc"] == {}, timeout=TIMEOUT_MS)


def test_use_for_checking_needs_a_bundle(qtbot, page, runs):
    page.select_paths([runs["ft"]])
    assert not page.use_button.isEnabled()
    assert page.job_buttons["prune"].isEnabled()
    page.select_paths([runs["exported"]])
    assert page.use_button.isEnabled()
    with qtbot.waitSignal(page.sig_bundle_selected) as blocker:
        qtbot.mouseClick(page.use_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [str(runs["exported"])]
    page.select_paths([runs["bundle"]])
    assert not page.job_buttons["prune"].isEnabled()  # a bundle is not a run to prune
    with qtbot.waitSignal(page.sig_bundle_selected) as blocker:
        qtbot.mouseClick(page.use_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [str(runs["bundle"])]


def test_prune_button_requests_a_prefilled_job(qtbot, page, runs):
    page.select_paths([runs["ft"]])
    with qtbot.waitSignal(page.sig_new_job_requested) as blocker:
        qtbot.mouseClick(page.job_buttons["distill"], Qt.MouseButton.LeftButton)
    assert blocker.args == ["distill", {"teacher": str(runs["ft"]), "data": "/data/faces"}]


def test_quality_report_button_requests_a_report_of_the_selection(qtbot, page, runs):
    page.select_paths([runs["ft"]])
    assert page.job_buttons["report"].isEnabled()
    with qtbot.waitSignal(page.sig_new_job_requested) as blocker:
        qtbot.mouseClick(page.job_buttons["report"], Qt.MouseButton.LeftButton)
    assert blocker.args == [
        "report",
        {"models": [str(runs["ft"])], "data": "/data/faces", "split": "test"},
    ]
    page.select_paths([runs["ft"], runs["bundle"]])  # a bundle records no data set
    assert page.job_buttons["report"].isEnabled() and not page.job_buttons["prune"].isEnabled()
    with qtbot.waitSignal(page.sig_new_job_requested) as blocker:
        qtbot.mouseClick(page.job_buttons["report"], Qt.MouseButton.LeftButton)
    assert blocker.args[1]["models"] == [str(runs["ft"]), str(runs["bundle"])]
    page.tree.clearSelection()
    assert not page.job_buttons["report"].isEnabled()


def test_reports_tab_lists_reports_newest_first_and_skips_torn_files(
    qtbot, page, studio_workspace, monkeypatch
):
    import os

    from PySide6.QtGui import QDesktopServices

    reports = studio_workspace.reports
    for stamp, name, accuracy in ((1_000, "older", 0.5), (2_000, "newer", 0.875)):
        section = {
            "model": f"/runs/{name}-run",
            "metrics": {"accuracy": accuracy, "ece": 0.03},
            "coverage_risk": {"at_threshold": {"coverage": 0.4, "risk": 0.1}},
            "robustness": {"jpeg75": {"flipped": 0.02}, "downscale0.5": {"flipped": 0.06}},
            "leave_out": {"class": "sdxl", "detected_as_fake": 0.25} if name == "newer" else None,
        }
        body = {"config": {"data": "/data/faces", "split": "test"}, "models": [section]}
        (reports / f"{name}.json").write_text(json.dumps(body))
        (reports / f"{name}.html").write_text("<html></html>")
        os.utime(reports / f"{name}.html", (stamp, stamp))
    (reports / "torn.json").write_text('{"models": [')
    (reports / "torn.html").write_text("")
    with qtbot.waitSignal(page.sig_runs_loaded, timeout=TIMEOUT_MS):
        page.refresh()
    panel = page.reports_panel
    qtbot.waitUntil(lambda: panel.tree.topLevelItemCount() == 2, timeout=TIMEOUT_MS)
    newest = panel.tree.topLevelItem(0)
    assert [newest.text(0), newest.text(2)] == ["newer", "faces (test)"]
    model = newest.child(0)
    assert [model.text(i) for i in (0, 3, 4, 5, 6, 7)] == [
        "newer-run", "87.5%", "0.030", "40.0%", "6.0%", "sdxl: 25.0%"
    ]  # fmt: skip
    assert panel.tree.topLevelItem(1).child(0).text(7) == ""
    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()))
    page.tabs.setCurrentWidget(panel)
    qtbot.mouseClick(panel.open_button, Qt.MouseButton.LeftButton)
    assert opened == [str(reports / "newer.html")]


def test_delete_asks_first_and_refreshes(qtbot, page, runs, monkeypatch):
    answers = [QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Yes]
    questions: list[str] = []

    def ask(parent, title, text, *args):
        questions.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", ask)
    page.select_paths([runs["pruned"]])
    qtbot.mouseClick(page.delete_button, Qt.MouseButton.LeftButton)
    assert runs["pruned"].exists()  # cancelled
    assert "2 derived runs keep their files but lose their parent" in questions[0]
    with qtbot.waitSignal(page.sig_runs_loaded, timeout=TIMEOUT_MS) as blocker:
        qtbot.mouseClick(page.delete_button, Qt.MouseButton.LeftButton)
    assert not runs["pruned"].exists()
    assert blocker.args == [4]
    assert rows(page) == [(0, "r0-other"), (0, "r1-finetune"), (0, "r3-export"), (1, "b1-int8")]


def test_refresh_picks_up_new_runs_and_keeps_the_selection(qtbot, page, runs, studio_workspace):
    page.select_paths([runs["ft"]])
    new = make_run(
        studio_workspace.runs,
        "r4-distill",
        "distill",
        parent="r1-finetune",
        created="2026-11-23T13",
    )
    (new / "run.json").write_text(
        json.dumps({**json.loads((new / "run.json").read_text()), "status": "running"})
    )
    with qtbot.waitSignal(page.sig_runs_loaded, timeout=TIMEOUT_MS):
        page.refresh()
    assert (1, "r4-distill") in rows(page)
    assert [r.name for r in page.selected_runs()] == ["r1-finetune"]


def test_empty_workspace_says_what_to_do(qtbot, tmp_path):
    from core.workspace import Workspace

    widget = ModelsPage(Workspace.resolve(tmp_path / "empty"))
    qtbot.addWidget(widget)
    with qtbot.waitSignal(widget.sig_runs_loaded, timeout=TIMEOUT_MS) as blocker:
        pass
    widget.show()
    assert blocker.args == [0]
    assert widget.empty_label.isVisible() and "No runs yet" in widget.empty_label.text()


def test_open_folder_opens_the_run_in_the_file_manager(qtbot, page, runs, monkeypatch):
    from PySide6.QtGui import QDesktopServices

    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()))
    page.select_paths([runs["pruned"]])
    qtbot.mouseClick(page.open_button, Qt.MouseButton.LeftButton)
    assert opened == [str(runs["pruned"])]


def test_learning_curves_tab_plots_the_points_the_fit_and_the_target(qtbot, page, studio_workspace):
    """The README's CIFAKE curve written as a curve job would; its point runs join the tree."""
    from core.learning_curve import read_curve

    folder = studio_workspace.runs / "cifake-curve"
    n, accuracy = [9_000, 18_000, 36_000], [0.9467, 0.9578, 0.9708]
    points = [
        {"share": s, "n_train": k, "test_acc": a, "val_acc": a, "test_n": 2000, "run_dir": f"p{s}"}
        for s, k, a in zip((0.25, 0.5, 1.0), n, accuracy, strict=True)
    ]
    body = {"data": "/data/cifake/train", "arch": "resnet18", "shares": [0.25, 0.5, 1.0]}
    body |= {"points": points, **read_curve(n, accuracy, target=0.977)}
    make_run(folder, "cifake-curve-share-0.25", "finetune", summary={"test_acc": 0.9467})
    (folder / "curve.json").write_text(json.dumps(body))
    (studio_workspace.runs / "torn-curve").mkdir()
    (studio_workspace.runs / "torn-curve" / "curve.json").write_text('{"points": [')
    with qtbot.waitSignal(page.sig_runs_loaded, timeout=TIMEOUT_MS):
        page.refresh()
    panel = page.curves_panel
    qtbot.waitUntil(lambda: panel.tree.topLevelItemCount() == 1, timeout=TIMEOUT_MS)
    row = panel.tree.topLevelItem(0)
    assert [row.text(i) for i in range(6)] == [
        "cifake-curve", "train", "resnet18", "3 of 3", "97.1%", "0.43"
    ]  # fmt: skip
    assert str(folder / "cifake-curve-share-0.25") in page.runs  # the point runs are listed
    page.tabs.setCurrentWidget(panel)
    assert panel.verdict_label.text() == body["verdict"]
    measured, fit, target = panel.plot.getPlotItem().listDataItems()
    xs, ys = measured.getOriginalDataset()
    assert list(xs) == n and list(ys) == pytest.approx([1 - a for a in accuracy])
    xs, ys = fit.getOriginalDataset()
    assert xs[0] == 9_000 and xs[-1] == pytest.approx(72_000)  # on to twice the largest point,
    assert body["images_for_target"] < 72_000 and ys[-1] < 1 - 0.977  # past the target's n
    assert list(target.getOriginalDataset()[1]) == pytest.approx([0.023, 0.023])


@pytest.mark.parametrize(("target_n", "drawn_to"), [(5_000, 5_000), (20_000, 2_000)])
def test_the_fit_is_drawn_to_the_target_only_within_ten_times_the_data(target_n, drawn_to):
    from app.pages.model_curves import fit_line
    from core.learning_curve import CurveInfo, PowerLaw

    law = PowerLaw(a=0.5, b=0.5, rms_log_residual=0.0)
    target = 1 - law.error_at(target_n)
    curve = CurveInfo("c", "d", "m", (0.5, 1.0), (500, 1_000), (0.97, 0.98), law, target, "")
    xs, ys = fit_line(curve)
    assert xs[0] == 500 and xs[-1] == pytest.approx(drawn_to)
    assert ys == pytest.approx(0.5 * xs**-0.5)


def test_figure_headers_say_what_they_measure(page):
    header = page.tree.headerItem()
    tips = {key: header.toolTip(index) for key, index in COLUMN.items()}
    assert tips["params"] == "parameters (weights) of the network"
    assert tips["macs"] == "multiply-accumulates per image: the compute cost"
    assert tips["f1"] == "macro F1 over the classes (each class weighs the same)"
    assert tips["auc"] == "ROC AUC of real vs fake"
    for panel in (page.reports_panel, page.curves_panel):
        head = panel.tree.headerItem()
        assert all(head.toolTip(i) for i in range(panel.tree.columnCount()))


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("finetune", "Fine-tune"),
        ("prune", "Prune"),
        ("distill", "Distill"),
        ("export", "Export"),
        ("bundle (int8)", "Bundle (int8)"),
        ("curve", "Curve"),
    ],
)
def test_kinds_read_as_words(kind, text):
    from app.pages.models import kind_text

    assert kind_text(kind) == text


def test_two_folders_with_the_same_run_id_show_their_folder_names(qtbot, page, studio_workspace):
    copy = make_run(studio_workspace.runs, "r1-finetune-copy", "finetune", created="2026-11-24")
    run = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**run, "id": "r1-finetune"}))
    with qtbot.waitSignal(page.sig_runs_loaded, timeout=TIMEOUT_MS):
        page.refresh()
    names = [name for _, name in rows(page)]
    assert names.count("r1-finetune") == 1 and "r1-finetune-copy" in names
    assert "id in run.json: r1-finetune" in item_named(page, "r1-finetune-copy").toolTip(0)


def test_use_for_checking_takes_a_runs_only_bundle_child(qtbot, page, runs, studio_workspace):
    make_bundle(studio_workspace.bundles, "b0-other", "r0-other", accuracy=0.7)
    with qtbot.waitSignal(page.sig_runs_loaded, timeout=TIMEOUT_MS):
        page.refresh()
    page.select_paths([runs["other"]])
    assert page.use_button.isEnabled()
    with qtbot.waitSignal(page.sig_bundle_selected) as blocker:
        qtbot.mouseClick(page.use_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [str(studio_workspace.bundles / "b0-other")]


def test_use_for_checking_says_which_row_to_pick_when_it_cannot_choose(page, runs):
    page.select_paths([runs["ft"]])  # a child run (pruned), no bundle of its own
    assert not page.use_button.isEnabled()
    assert "select the bundle row under the run" in page.use_button.toolTip().lower()


def test_validation_curves_tab_asks_for_a_selection_before_plotting(qtbot, page, runs):
    assert page.curves_stack.currentWidget() is page.curves_hint
    assert "Select runs above" in page.curves_hint.text()
    page.select_paths([runs["ft"]])
    qtbot.waitUntil(lambda: page.curves_stack.currentIndex() == 1, timeout=TIMEOUT_MS)
    page.select_paths([runs["other"]])  # no metrics.csv
    qtbot.waitUntil(lambda: page.curves_stack.currentIndex() == 0, timeout=TIMEOUT_MS)
    assert "no validation curves" in page.curves_hint.text()


def test_the_overlay_legend_sits_in_the_emptiest_corner_and_lets_curves_show(qtbot, page, runs):
    page.select_paths([runs["ft"]])  # val_acc rises: the top left and bottom right are empty
    qtbot.waitUntil(lambda: len(page.overlay_curves["val_acc"]) == 1, timeout=TIMEOUT_MS)
    legend = page.legends["val_acc"]
    assert legend.opts["offset"] in {(8, 8), (-8, -8)}  # top left or bottom right
    assert legend.opts["brush"].color().alpha() < 255


def test_emptiest_corner_counts_points():
    from app.widgets.plot_legend import emptiest_corner

    rising = [(x, x) for x in range(10)]
    assert emptiest_corner(rising) == (1, 0)  # bottom right
    falling = [(x, -x) for x in range(10)]
    assert emptiest_corner(falling) == (1, 1)  # top right
    assert emptiest_corner([]) == (1, 1)
