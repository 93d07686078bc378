"""Sentiment model: score, blend, change and incident weight at their boundaries."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedback_loop.sentiment import incident_weight, score, update_sentiment


@pytest.mark.parametrize("rating", [1, 2, 3, 4, 5])
def test_score_spans_minus_one_to_one_with_three_neutral(rating):
    assert score(rating) == pytest.approx((rating - 3) / 2)
    assert -1.0 <= score(rating) <= 1.0


def test_extreme_ratings_are_the_extreme_scores():
    assert (score(1), score(3), score(5)) == (-1.0, 0.0, 1.0)


def test_incident_weight_is_one_when_it_hurt_and_zero_when_not():
    assert incident_weight(1) == 1.0
    assert incident_weight(5) == 0.0
    assert [incident_weight(r) for r in range(1, 6)] == sorted(
        (incident_weight(r) for r in range(1, 6)), reverse=True
    )


@pytest.mark.parametrize("bad", [0, 6, 9, -1])
def test_out_of_range_rating_is_refused(bad):
    with pytest.raises(ValueError, match="rating"):
        score(bad)
    with pytest.raises(ValueError, match="rating"):
        incident_weight(bad)


@pytest.mark.parametrize("bad", ["3", 3.0, True, None])
def test_non_integer_rating_is_refused(bad):
    with pytest.raises(TypeError):
        score(bad)


def test_very_poor_rating_from_neutral_lowers_sentiment_by_alpha():
    alpha = 0.5

    update = update_sentiment(None, 1, alpha)

    assert update.previous == 0.0
    assert update.sentiment == pytest.approx(alpha * score(1))
    assert update.change < 0
    assert update.change == pytest.approx(update.sentiment - update.previous)


def test_good_rating_raises_a_negative_sentiment():
    update = update_sentiment(-0.8, 5, 0.25)

    assert update.sentiment == pytest.approx(0.75 * -0.8 + 0.25 * score(5))
    assert update.change > 0


def test_alpha_one_replaces_sentiment_with_the_score():
    assert update_sentiment(0.9, 1, 1.0).sentiment == score(1)


def test_out_of_range_previous_value_is_clamped():
    update = update_sentiment(7.0, 5, 0.5)

    assert update.previous == 1.0
    assert update.sentiment == 1.0
    assert update.change == 0.0


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5])
def test_alpha_outside_zero_one_is_refused(alpha):
    with pytest.raises(ValueError, match="alpha"):
        update_sentiment(0.0, 3, alpha)


@given(
    previous=st.floats(min_value=-1, max_value=1),
    rating=st.integers(min_value=1, max_value=5),
    alpha=st.floats(min_value=0.01, max_value=1),
)
def test_sentiment_stays_in_range_and_moves_towards_the_score(previous, rating, alpha):
    update = update_sentiment(previous, rating, alpha)

    assert -1.0 <= update.sentiment <= 1.0
    assert update.change == pytest.approx(update.sentiment - update.previous)
    assert abs(score(rating) - update.sentiment) <= abs(score(rating) - previous) + 1e-12
