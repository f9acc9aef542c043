"""dtcore.convergence: the fine-tuning length rule and the score over the last checkpoints
(docs/profiles.md, "Converged before compared (issue #32)").

The length rule is checked on synthetic curves whose answer is worked out by hand (flat, rising,
oscillating, never levelling) and on the measured curve of docs/profiles.md (random body, seed 0),
for which the rule was documented to give 7 epochs. The scores are checked by simulation, 4000
draws at once: on flat curves the last-epochs score is unbiased and the best-epoch score is not;
on an oscillating curve read through noisy selection episodes the per-seed spread of the new score
is below the best-epoch score's.
"""

from __future__ import annotations

import numpy as np
import pytest

from dtcore import convergence as cv

# docs/profiles.md, "Fine-tuning length": hopper, random body, seed 0, 14 epochs of 400 steps.
DOC_ERROR = [.319, .189, .174, .162, .155, .151, .145, .143, .139, .137, .133, .132, .129, .127]
DOC_RETURN = [234, 453, 551, 39, 1220, 870, 884, 917, 797, 751, 568, 1111, 1288, 1034]


def test_the_documented_random_body_curve_gives_seven_epochs():
    # (a1) fails at 5 and 6 (2.6 %, 2.6 % per epoch), holds at 7 (1.8 %); (a2) holds at 7.
    assert not cv.error_levelled(DOC_ERROR, 6)
    assert cv.error_levelled(DOC_ERROR, 7)
    assert cv.converged_epoch(DOC_ERROR, DOC_RETURN) == 7


def test_a_flat_curve_has_converged_at_the_first_epoch():
    assert cv.converged_epoch([0.1] * 12, [1000.0] * 12) == 1


def test_a_rising_curve_converges_once_both_parts_level_off():
    # error: -20 % per epoch to epoch 8, flat after: (a1) first holds at 8.
    # return: 100 e up to epoch 10, 1000 after: (a2) fails at 8 (900 < 1000 - 81.6), holds at 9
    # (966.7 >= 1000 - 40.8). The answer is the first epoch meeting both: 9.
    err = [0.8 ** min(e - 1, 7) for e in range(1, 17)]
    ret = [100.0 * min(e, 10) for e in range(1, 17)]
    assert [e for e in range(1, 12) if cv.error_levelled(err, e)][0] == 8
    assert not cv.return_levelled(ret, 8) and cv.return_levelled(ret, 9)
    assert cv.converged_epoch(err, ret) == 9


def test_an_oscillating_return_without_trend_does_not_delay_convergence():
    # The rule reads trends, not swings: the swing is the score's business (part b).
    err = [0.2 * 0.99 ** e for e in range(16)]
    ret = [500.0 if e % 2 else 1300.0 for e in range(16)]
    assert cv.converged_epoch(err, ret) == 1


def test_a_curve_still_falling_has_not_converged():
    err = [0.3 * 0.95 ** e for e in range(21)]          # 5 % per epoch throughout
    assert cv.converged_epoch(err, [1000.0] * 21) is None
    assert cv.converged_epoch([0.1] * 5, [1.0] * 5) is None   # too short to judge any epoch
    assert cv.judgeable_epochs(21) == 16


def test_the_length_is_the_longest_body_and_none_when_one_has_not_converged():
    flat = ([0.1] * 12, [1000.0] * 12)
    rising = ([0.8 ** min(e - 1, 7) for e in range(1, 17)], [100.0 * min(e, 10) for e in range(1, 17)])
    falling = ([0.3 * 0.95 ** e for e in range(21)], [1000.0] * 21)
    assert cv.fine_tuning_length({"random": flat, "gpt2": rising}) == 9
    assert cv.converged_epochs({"random": flat, "gpt2": falling}) == {"random": 1, "gpt2": None}
    assert cv.fine_tuning_length({"random": flat, "gpt2": falling}) is None
    assert cv.trained_epochs(9) == 13


def test_seed_mean_keeps_the_epochs_every_seed_has():
    np.testing.assert_allclose(cv.seed_mean([[1.0, 2.0, 3.0], [3.0, 4.0]]), [2.0, 3.0])


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="one value per epoch"):
        cv.converged_epoch([0.1] * 8, [1.0] * 7)
    with pytest.raises(ValueError, match="at least 5 epochs"):
        cv.last_epochs_score(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="must match"):
        cv.best_epoch_score(np.zeros((3, 4)), np.zeros((3, 5)))


# -- the scores, by simulation ------------------------------------------------------------------

DRAWS = 4000       # simulated seeds
EPOCHS = 11        # a run of trained_epochs(7)
SELECTION_SD = 25.6 / np.sqrt(10)   # 10 selection episodes at the largest per-episode sd measured
SCORED_SD = 25.6 / np.sqrt(100)     # 100 fresh episodes (today's scored set)
WINDOW_SD = 25.6 / np.sqrt(cv.SCORED_EPISODES_PER_CHECKPOINT)


def _simulate(quality: np.ndarray, rng: np.random.Generator):
    """Per-epoch values of each draw [DRAWS, EPOCHS]: the selection episodes' means, the best
    epoch re-scored on 100 fresh episodes, and each checkpoint scored on 20 fresh episodes."""
    selection = quality + rng.normal(0, SELECTION_SD, quality.shape)
    rescored = quality + rng.normal(0, SCORED_SD, quality.shape)
    window = quality + rng.normal(0, WINDOW_SD, quality.shape)
    return selection, rescored, window


@pytest.mark.parametrize("checkpoint_sd", [0.0, 10.0], ids=["identical-checkpoints", "checkpoints-that-swing"])
def test_the_last_epochs_score_is_unbiased_on_a_flat_curve_and_the_paper_score_is_not(checkpoint_sd):
    rng = np.random.default_rng(32)
    true = 40.0
    quality = true + rng.normal(0, checkpoint_sd, (DRAWS, EPOCHS))   # flat: no trend, mean 40
    selection, rescored, window = _simulate(quality, rng)
    new = cv.last_epochs_score(window)
    se = new.std(ddof=1) / np.sqrt(DRAWS)
    assert abs(new.mean() - true) < 4 * se, f"last-epochs score mean {new.mean():.2f} vs true {true}"
    own = cv.best_epoch_score(selection)            # the paper's number: the chosen epoch's own episodes
    assert own.mean() > true + 10 * se, f"best-epoch score mean {own.mean():.2f} should exceed {true}"
    if checkpoint_sd:                               # fresh episodes remove the episode part only
        fresh = cv.best_epoch_score(selection, rescored)
        assert fresh.mean() > true + 10 * se, f"re-scored best epoch mean {fresh.mean():.2f}"


def test_the_last_epochs_score_spreads_less_over_seeds_on_an_oscillating_curve():
    # A plateau whose checkpoints swing by sd 10 points (the random body's 570-1290 raw swings are
    # sd ~ 8 normalised points), each seed with its own phase of a slow swing on top.
    rng = np.random.default_rng(2022)
    epochs = np.arange(1, EPOCHS + 1)
    phase = rng.uniform(0, 2 * np.pi, (DRAWS, 1))
    quality = 40 + 8 * np.sin(2 * np.pi * epochs / 4 + phase) + rng.normal(0, 6, (DRAWS, EPOCHS))
    selection, rescored, window = _simulate(quality, rng)
    new_sd = cv.last_epochs_score(window).std(ddof=1)
    paper_sd = cv.best_epoch_score(selection, rescored).std(ddof=1)
    assert new_sd < 0.75 * paper_sd, f"per-seed sd: last-epochs {new_sd:.2f}, best-epoch {paper_sd:.2f}"


def test_scores_read_the_last_axis_and_keep_the_leading_ones():
    values = np.array([[1.0, 5.0, 2.0, 3.0, 4.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 9.0]])
    np.testing.assert_allclose(cv.best_epoch_score(values), [5.0, 9.0])
    np.testing.assert_allclose(cv.best_epoch_score(values, values * 10), [50.0, 90.0])
    np.testing.assert_allclose(cv.last_epochs_score(values), [2.8, 1.8])
    assert cv.best_epoch_score(values[0]).shape == ()
