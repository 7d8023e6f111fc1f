"""core.metrics against values computed by hand (the comments show the arithmetic)."""

from __future__ import annotations

import numpy as np
import pytest

from core.metrics import (
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    fake_scores,
    group_report,
    per_class_prf,
    reliability_bins,
    roc_auc,
    roc_curve,
)

Y_TRUE = [0, 0, 1, 1, 2, 2, 2]
Y_PRED = [0, 1, 1, 1, 2, 0, 2]


def test_confusion_matrix_rows_are_true_columns_predicted():
    matrix = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert matrix.dtype == np.int64


def test_confusion_matrix_counts_repeated_pairs():
    # np.add.at, not fancy-index assignment: three (1, 0) pairs count three times
    assert confusion_matrix([1, 1, 1], [0, 0, 0], 2).tolist() == [[0, 0], [3, 0]]


def test_per_class_precision_recall_f1():
    prf = per_class_prf(confusion_matrix(Y_TRUE, Y_PRED, 3))
    # precision = tp / column sum: 1/2, 2/3, 2/2; recall = tp / row sum: 1/2, 2/2, 2/3
    assert prf["precision"] == pytest.approx([0.5, 2 / 3, 1.0])
    assert prf["recall"] == pytest.approx([0.5, 1.0, 2 / 3])
    # F1 = 2PR/(P+R): 0.5; 2*(2/3)/(5/3) = 0.8; 0.8
    assert prf["f1"] == pytest.approx([0.5, 0.8, 0.8])
    assert prf["support"] == [2, 2, 3]


def test_per_class_zero_division_is_zero_not_nan():
    # class 1 is predicted once but never present; class 2 neither present nor predicted
    matrix = confusion_matrix([0, 0, 0], [0, 0, 1], 3)
    prf = per_class_prf(matrix)
    assert prf["precision"] == [1.0, 0.0, 0.0]
    assert prf["recall"] == pytest.approx([2 / 3, 0.0, 0.0])
    assert prf["f1"] == pytest.approx([0.8, 0.0, 0.0])
    assert prf["support"] == [3, 0, 0]
    assert all(np.isfinite(v) for key in ("precision", "recall", "f1") for v in prf[key])


def test_roc_auc_with_ties_matches_pair_count():
    y = [0, 0, 1, 1, 0, 1]
    s = [0.1, 0.4, 0.4, 0.8, 0.8, 0.9]
    # positives {0.4, 0.8, 0.9} vs negatives {0.1, 0.4, 0.8}; a tie counts 1/2:
    # 0.4 -> 1 + .5 + 0 ; 0.8 -> 1 + 1 + .5 ; 0.9 -> 3  => 7 / 9
    assert roc_auc(y, s) == pytest.approx(7 / 9)
    fpr, tpr = roc_curve(y, s)
    assert float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)) == pytest.approx(7 / 9)


def test_roc_auc_extremes_and_single_class():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert roc_auc([1, 1, 1], [0.2, 0.5, 0.9]) is None
    assert roc_auc([0, 0], [0.2, 0.5]) is None


def test_roc_curve_points():
    fpr, tpr = roc_curve([0, 1, 1, 0], [0.2, 0.9, 0.6, 0.6])
    # thresholds 0.9, 0.6 (one positive and one negative tie), 0.2
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]


ECE_PROBS = np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.55, 0.45]])
ECE_TRUE = [0, 1, 1, 1, 1]


def test_ece_hand_computed_three_bins():
    # bins (0,1/3] (1/3,2/3] (2/3,1]; confidences 0.9 0.9 0.8 | 0.6 0.55
    # top bin: accuracy 2/3, confidence 2.6/3, gap 0.2, weight 3/5 -> 0.12
    # middle bin: accuracy 1/2 (0.6 right, 0.55 wrong), confidence 0.575, gap 0.075, weight 2/5
    # -> 0.03; ECE = 0.15
    assert expected_calibration_error(ECE_TRUE, ECE_PROBS, n_bins=3) == pytest.approx(0.15)


def test_reliability_bins_match_ece():
    rows = reliability_bins(ECE_TRUE, ECE_PROBS, n_bins=3)
    assert [r["count"] for r in rows] == [0, 2, 3]
    assert rows[0]["confidence"] is None and rows[0]["accuracy"] is None
    assert rows[1]["confidence"] == pytest.approx(0.575) and rows[1]["accuracy"] == 0.5
    assert rows[2]["confidence"] == pytest.approx(2.6 / 3) and rows[2]["accuracy"] == 2 / 3
    assert rows[2]["high"] == 1.0
    ece = sum(r["count"] / 5 * abs(r["accuracy"] - r["confidence"]) for r in rows if r["count"])
    assert ece == pytest.approx(expected_calibration_error(ECE_TRUE, ECE_PROBS, n_bins=3))


def test_ece_perfectly_calibrated_is_zero():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error([0, 1], probs) == 0.0


# classes in an order where "real" is not first, so the real index matters
NAMES = ["sd14", "real", "sdxl"]
REPORT_TRUE = [1, 1, 0, 2, 2, 0]
REPORT_PROBS = np.array(
    [
        [0.1, 0.8, 0.1],  # real -> real
        [0.6, 0.3, 0.1],  # real -> sd14: wrong, also as real-vs-fake
        [0.2, 0.1, 0.7],  # sd14 -> sdxl: wrong class, but right as "fake"
        [0.1, 0.2, 0.7],  # sdxl -> sdxl
        [0.3, 0.5, 0.2],  # sdxl -> real: wrong both ways
        [0.9, 0.05, 0.05],  # sd14 -> sd14
    ]
)


def test_macro_f1_leaves_out_classes_absent_from_labels_and_predictions():
    # real images only, all right; "sd14" is neither true nor predicted, "sdxl" predicted once
    probs = np.array([[0.05, 0.9, 0.05], [0.1, 0.8, 0.1], [0.1, 0.3, 0.6]])  # NAMES' order
    report = classification_report([1, 1, 1], probs, NAMES)
    assert report["per_class"]["real"]["f1"] == pytest.approx(0.8)  # P 1, R 2/3
    assert report["macro_f1"] == pytest.approx((0.8 + 0.0) / 2)  # sdxl counts (a wrong guess)
    perfect = classification_report([1, 1], probs[:2], NAMES)
    assert perfect["macro_f1"] == 1.0  # not 1/3 for two classes the data does not have


def test_classification_report_with_real_class():
    report = classification_report(REPORT_TRUE, REPORT_PROBS, NAMES)
    assert report["n"] == 6
    assert report["accuracy"] == pytest.approx(3 / 6)
    assert report["binary_accuracy"] == pytest.approx(4 / 6)
    # fake scores 1 - p(real): real images 0.2, 0.7; fakes 0.9, 0.8, 0.5, 0.95
    # pairs: 0.9 > both, 0.8 > both, 0.5 > 0.2 only, 0.95 > both => 7 / 8
    assert report["auc"] == pytest.approx(7 / 8)
    assert report["confusion_matrix"] == [[1, 0, 1], [1, 1, 0], [0, 1, 1]]
    assert report["per_class"]["real"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert report["macro_f1"] == pytest.approx(np.mean([0.5, 0.5, 0.5]))
    assert report["ece"] == pytest.approx(
        expected_calibration_error(REPORT_TRUE, REPORT_PROBS), abs=1e-12
    )


def test_fake_scores_use_the_real_column():
    assert fake_scores(REPORT_PROBS[:2], real_index=1) == pytest.approx([0.2, 0.7])


def test_classification_report_without_real_class_has_no_binary_metrics():
    report = classification_report(REPORT_TRUE, REPORT_PROBS, ["a", "b", "c"])
    assert report["auc"] is None and report["binary_accuracy"] is None
    assert report["accuracy"] == pytest.approx(0.5)


def test_classification_report_empty_input():
    report = classification_report([], np.zeros((0, 3)), NAMES)
    assert report["n"] == 0
    assert report["accuracy"] is None and report["ece"] is None
    assert report["auc"] is None and report["binary_accuracy"] is None
    assert report["confusion_matrix"] == [[0] * 3] * 3


def test_group_report_scores_each_group_on_its_own():
    # classes [fake, real]; group a: 2 right of 3 (one real called fake); group b: 1 right of 2
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.4, 0.6]])
    y_true = [0, 1, 1, 1, 0]
    report = group_report(["a", "a", "a", "b", "b"], y_true, probs, ["fake", "real"])
    assert list(report) == ["a", "b"]
    assert report["a"]["n"] == 3 and report["a"]["accuracy"] == pytest.approx(2 / 3)
    assert report["a"]["binary_accuracy"] == pytest.approx(2 / 3)
    # a: fake scores 0.9 (fake) vs 0.2, 0.6 (real): both pairs ordered right
    assert report["a"]["auc"] == pytest.approx(1.0)
    assert report["b"]["accuracy"] == pytest.approx(0.5)
    # b: fake image 0.4 vs real image 0.3: ordered right
    assert report["b"]["auc"] == pytest.approx(1.0)
    only_real = group_report(["x", "x"], [1, 1], probs[1:3], ["fake", "real"])
    assert only_real["x"]["auc"] is None and only_real["x"]["accuracy"] == pytest.approx(0.5)
