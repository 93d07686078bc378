"""Sentiment model: a DTMF rating moves the subscriber's sentiment (docs/ARCHITECTURE.md).

Sentiment is an exponential moving average of rating scores, so one answer
moves it but a single outlier does not define the subscriber; ``alpha`` is the
policy's ``sentiment_alpha``. Opt-out and no response never reach this module.
"""

from dataclasses import dataclass

MIN_RATING = 1
MAX_RATING = 5
NEUTRAL = 0.0


@dataclass(frozen=True)
class SentimentUpdate:
    """The effect of one rating: ``change`` is ``sentiment - previous`` (negative = worse)."""

    previous: float
    sentiment: float
    change: float


def _check_rating(rating: int) -> int:
    if isinstance(rating, bool) or not isinstance(rating, int):
        raise TypeError(f"rating must be an int, got {rating!r}")
    if not MIN_RATING <= rating <= MAX_RATING:
        raise ValueError(f"rating must be {MIN_RATING}..{MAX_RATING}, got {rating}")
    return rating


def _clamp(value: float) -> float:
    return max(-1.0, min(1.0, value))


def score(rating: int) -> float:
    """Rating 1..5 as a score in [-1, 1]: 1 → -1 (very poor), 3 → 0, 5 → 1."""
    return (_check_rating(rating) - 3) / 2


def incident_weight(rating: int) -> float:
    """How much the incident hurt: 1 for rating 1, 0 for rating 5 (validates the incident)."""
    return (MAX_RATING - _check_rating(rating)) / 4


def update_sentiment(previous: float | None, rating: int, alpha: float) -> SentimentUpdate:
    """Blend the rating's score into the previous sentiment (absent means neutral).

    The previous value is clamped first so a corrupted stored value cannot push
    the result out of [-1, 1].
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    prev = _clamp(NEUTRAL if previous is None else float(previous))
    new = _clamp((1 - alpha) * prev + alpha * score(rating))
    return SentimentUpdate(previous=prev, sentiment=new, change=new - prev)
