"""core.rejection and core.verdict: temperature scaling, threshold choice, the decision rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.errors import UserError
from core.metrics import expected_calibration_error
from core.rejection import (
    Calibration,
    choose_threshold,
    compare_scores,
    decide,
    fit_temperature,
    heldout_auroc,
    nll,
)
from core.verdict import accepts, logsumexp, scores_of, softmax

CLASSES = ["real", "sd14", "sdxl"]


def calibrated_sample(n: int = 3000, classes: int = 3, seed: int = 0):
    """Logits of a perfectly calibrated model and labels drawn from its probabilities."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (n, classes))
    probs = softmax(logits)
    labels = np.array([rng.choice(classes, p=p) for p in probs])
    return logits, labels


def test_softmax_and_logsumexp_are_stable_and_exact() -> None:
    z = np.array([[1000.0, 1000.0, 1000.0 - math.log(2.0)], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(softmax(z)[0], [0.4, 0.4, 0.2])
    np.testing.assert_allclose(logsumexp(z), [1000.0 + math.log(2.5), math.log(3.0)])


@pytest.mark.parametrize("scale", [3.0, 0.5])
def test_fit_temperature_undoes_miscalibration(scale: float) -> None:
    logits, labels = calibrated_sample()
    skewed = logits * scale
    temperature = fit_temperature(skewed, labels)
    assert temperature == pytest.approx(scale, rel=0.12)
    assert nll(skewed, labels, temperature) < nll(skewed, labels, 1.0)
    before = expected_calibration_error(labels, softmax(skewed))
    after = expected_calibration_error(labels, softmax(skewed / temperature))
    assert after < before / 2


def test_fit_temperature_matches_a_grid_search() -> None:
    logits, labels = calibrated_sample(500, seed=3)
    logits = logits * 2.2 + 0.3
    grid = np.exp(np.linspace(math.log(0.05), math.log(20.0), 4001))
    best = grid[np.argmin([nll(logits, labels, t) for t in grid])]
    assert fit_temperature(logits, labels) == pytest.approx(best, rel=2e-3)
    assert fit_temperature(logits, labels) > 1.0


def brute_force_threshold(values: np.ndarray, wrong: np.ndarray, target: float):
    best = None
    for t in sorted(set(values.tolist())):
        accepted = values >= t
        risk = wrong[accepted].mean()
        if risk <= target and (best is None or t < best[0]):
            best = (t, accepted.mean(), risk)
    return best


@pytest.mark.parametrize("score", ["max_softmax", "energy"])
@pytest.mark.parametrize("target", [0.02, 0.1, 0.3])
def test_choose_threshold_is_the_lowest_meeting_the_target(score: str, target: float) -> None:
    logits, labels = calibrated_sample(400, seed=5)
    logits = np.round(logits, 1)  # ties happen
    calibration = choose_threshold(logits, labels, 1.3, score, target, chosen_on="synthetic")
    probs, values = scores_of(logits, 1.3, score)
    wrong = probs.argmax(axis=1) != labels
    threshold, coverage, risk = brute_force_threshold(values, wrong, target)
    assert calibration.reached
    assert calibration.threshold == pytest.approx(threshold)
    assert calibration.coverage == pytest.approx(coverage)
    assert calibration.risk == pytest.approx(risk)
    assert calibration.risk <= target
    assert (calibration.n, calibration.chosen_on, calibration.score) == (400, "synthetic", score)
    assert calibration.temperature == 1.3


def test_choose_threshold_accepts_everything_when_already_good_enough() -> None:
    logits = np.array([[3.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    calibration = choose_threshold(logits, [0, 0, 1], target_risk=0.05)
    assert calibration.coverage == 1.0 and calibration.risk == 0.0
    assert calibration.threshold == pytest.approx(softmax(np.array([0.0, 1.0]))[1])


def test_choose_threshold_says_when_the_target_is_unreachable() -> None:
    logits = np.array([[4.0, 0.0], [3.0, 0.0], [1.0, 0.0], [0.5, 0.0]])
    calibration = choose_threshold(logits, [1, 0, 0, 1], target_risk=0.05)
    assert not calibration.reached
    assert calibration.risk == pytest.approx(1 / 3)  # the lowest risk on offer (top 3)
    assert calibration.coverage == pytest.approx(0.75)
    assert "not reachable" in calibration.summary()
    (verdict,) = decide(np.array([[0.0, 0.2]]), calibration, ["real", "fake"], "real")
    assert verdict.verdict == "unknown"
    assert "threshold (the 5% error target was out of reach)" in verdict.explanation


def test_choose_threshold_rejects_bad_arguments() -> None:
    with pytest.raises(UserError, match="target risk"):
        choose_threshold(np.zeros((2, 2)), [0, 1], target_risk=1.5)
    with pytest.raises(UserError, match="3 logits but 2 labels"):
        choose_threshold(np.zeros((3, 2)), [0, 1])


def test_decide_implements_the_documented_rule() -> None:
    calibration = Calibration(temperature=2.0, threshold=0.8, target_risk=0.05)
    logits = np.array(
        [
            [8.0, 0.0, 0.0],  # real, confident
            [0.0, 0.0, 8.0],  # sdxl, confident
            [1.0, 0.5, 0.0],  # real but unsure
            [0.0, 5.0, 5.0],  # tie: first maximum (sd14), unsure
        ]
    )
    verdicts = decide(logits, calibration, CLASSES, "real")
    assert [v.verdict for v in verdicts] == ["real", "fake", "unknown", "unknown"]
    assert [v.label for v in verdicts] == ["real", "sdxl", "real", "sd14"]
    probs = softmax(logits / 2.0)
    for verdict, row in zip(verdicts, probs, strict=True):
        assert verdict.confidence == pytest.approx(row.max())
        assert verdict.score == pytest.approx(row.max())
        assert verdict.margin == pytest.approx(row.max() - 0.8)
        assert list(verdict.probs) == CLASSES
        assert sum(verdict.probs.values()) == pytest.approx(1.0)
    unsure = verdicts[2]
    assert unsure.explanation == (
        f"Unknown: confidence {unsure.score:.2f} is below the 0.80 threshold chosen for at most "
        "5% errors (best guess: real)"
    )
    assert verdicts[1].explanation.startswith("Fake (sdxl): confidence 0.96 is at or above")


def test_decide_with_energy_uses_logsumexp_and_accepts_at_the_threshold() -> None:
    logits = np.array([[2.0, 0.0, 0.0], [0.2, 0.1, 0.0]])
    threshold = float(logsumexp(logits[:1] / 1.5)[0])
    calibration = Calibration(temperature=1.5, score="energy", threshold=threshold)
    verdicts = decide(logits, calibration, CLASSES, "real")
    assert verdicts[0].verdict == "real" and verdicts[0].margin == 0.0
    assert verdicts[1].verdict == "unknown"
    assert verdicts[1].score == pytest.approx(math.log(np.exp(logits[1] / 1.5).sum()))
    assert "familiarity score" in verdicts[1].explanation


def test_explanation_shows_enough_digits_to_tell_score_from_threshold() -> None:
    calibration = Calibration(threshold=0.682, target_risk=0.1)
    p = 0.675
    logits = np.array([[math.log(p / (1 - p)), 0.0]])
    (verdict,) = decide(logits, calibration, ["real", "fake"], "real")
    assert "confidence 0.675 is below the 0.682 threshold" in verdict.explanation


def test_calibration_round_trips_and_validates() -> None:
    calibration = Calibration(1.3, "energy", 4.2, 0.05, 0.91, 0.048, 812, "val", True)
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    # a later format may add fields: ignored; the rule's own fields are required
    assert Calibration.from_dict({**calibration.to_dict(), "colour": "red"}) == calibration
    for field in ("threshold", "temperature", "score"):
        body = {k: v for k, v in calibration.to_dict().items() if k != field}
        with pytest.raises(UserError, match=f"the calibration lacks {field}"):
            Calibration.from_dict(body)
    for bad in (float("nan"), float("inf"), "0.5", None, True):
        with pytest.raises(UserError, match="threshold must be a number"):
            Calibration.from_dict({**calibration.to_dict(), "threshold": bad})
    with pytest.raises(UserError, match="temperature must be positive"):
        Calibration(temperature=float("inf"))
    with pytest.raises(UserError, match="score must be one of"):
        Calibration(score="entropy")
    with pytest.raises(UserError, match="temperature must be positive"):
        Calibration(temperature=0.0)


def test_an_energy_floor_rejects_unfamiliar_images_however_confident() -> None:
    from core.rejection import energy_floor

    # energies log(e^k + 2): 4 -> 4.04, 5 -> 5.01, 6 -> 6.00; all three are confident
    logits = np.array([[4.0, 0.0, 0.0], [0.0, 5.0, 0.0], [6.0, 0.0, 0.0]])
    floor = energy_floor(logits, 1.0, keep=2 / 3)
    assert floor == pytest.approx(math.log(math.exp(5) + 2))  # two of three reach it
    assert energy_floor(logits, 1.0, keep=1.0) == pytest.approx(math.log(math.exp(4) + 2))
    calibration = Calibration(threshold=0.5, energy_floor=floor, floor_keep=2 / 3)
    verdicts = decide(logits, calibration, CLASSES, "real")
    assert [v.verdict for v in verdicts] == ["unknown", "fake", "real"]
    assert verdicts[0].margin > 0  # the confidence alone would have answered
    assert verdicts[0].explanation == (
        "Unknown: unlike the images the model learnt from (familiarity score 4.04 is below the "
        "floor 5.01, which 67% of validation images reach; best guess: real)"
    )
    close = Calibration(threshold=0.5, energy_floor=4.038, floor_keep=2 / 3)  # energy 4.0360
    assert decide(logits[:1], close, CLASSES, "real")[0].explanation == (
        "Unknown: unlike the images the model learnt from (familiarity score 4.036 is below the "
        "floor 4.038, which 67% of validation images reach; best guess: real)"
    )  # as many decimals as tell the two apart, not "4.04 is below the floor 4.04"
    assert accepts(logits, calibration)[1].tolist() == [False, True, True]
    assert "energy >= 5.01 (keeps 67%)" in calibration.summary()
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    assert "energy_floor" not in Calibration(threshold=0.5).to_dict()  # old bundles' shape
    with pytest.raises(UserError, match="keep between 0 and 100%"):
        energy_floor(logits, 1.0, keep=0.0)
    with pytest.raises(UserError, match="energy_floor must be a number"):
        Calibration(energy_floor=float("nan"))


def test_choose_threshold_above_an_energy_floor() -> None:
    """The floor rejects first; the threshold is the lowest meeting the risk among the rest, and
    coverage counts every image (the floored ones as rejected)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 400)
    logits = rng.normal(0, 1, (400, 3)) + 3.0 * np.eye(3)[labels] * rng.uniform(0, 2, (400, 1))
    plain = choose_threshold(logits, labels, 1.0, "max_softmax", 0.1)
    floored = choose_threshold(logits, labels, 1.0, "max_softmax", 0.1, floor_keep=0.8)
    energies = logsumexp(logits)
    assert floored.floor_keep == 0.8 and (energies >= floored.energy_floor).mean() >= 0.8
    probs, accepted = accepts(logits, floored)
    assert accepted.mean() == pytest.approx(floored.coverage)
    assert (probs.argmax(axis=1) != labels)[accepted].mean() == pytest.approx(floored.risk)
    assert floored.risk <= 0.1 and floored.coverage <= 0.8
    assert floored.coverage < plain.coverage and plain.energy_floor is None


def test_heldout_auroc_orients_known_images_high() -> None:
    assert heldout_auroc([0.9, 0.8, 0.95], [0.1, 0.5]) == 1.0
    assert heldout_auroc([0.1, 0.2], [0.9, 0.8]) == 0.0
    assert heldout_auroc([0.5, 0.5], [0.5]) == 0.5


def test_compare_scores_prefers_energy_for_a_shifted_unseen_class() -> None:
    logits, labels = calibrated_sample(600, seed=11)
    logits = logits + 4.0
    rng = np.random.default_rng(12)
    # An unseen generator: same logit differences (same softmax), but weaker activations.
    heldout = logits[rng.choice(len(logits), 300)] - 6.0
    result = compare_scores(logits, labels, 1.0, heldout)
    scores = result["scores"]
    assert scores["max_softmax"]["auroc_heldout"] == pytest.approx(0.5, abs=0.06)
    assert scores["energy"]["auroc_heldout"] > 0.9
    assert result["best"] == "energy" and result["by"] == "auroc_heldout"
    assert scores["max_softmax"]["auroc_correct"] > 0.7


def test_compare_scores_without_heldout_ranks_right_vs_wrong() -> None:
    logits, labels = calibrated_sample(800, seed=2)
    result = compare_scores(logits, labels)
    assert result["by"] == "auroc_correct"
    assert "auroc_heldout" not in result["scores"]["energy"]
    best = result["best"]
    assert result["scores"][best]["auroc_correct"] == max(
        row["auroc_correct"] for row in result["scores"].values()
    )
