"""Default behaviour of a called subscriber who has no answer in the scenario.

The model, per input prompt (one draw from a stream seeded by
``(seed, phone_number, n)`` where ``n`` counts this subscriber's draws, so a
run is reproducible and independent of call order across subscribers):

* 15 % do not pick up (``"no_answer"``; at a repeated prompt this is a hang-up),
* 3 % press 9 to opt out,
* 5 % pick up but press nothing (``"none"``, the prompt times out),
* the other 77 % rate 1..5. The rating is a rounded normal draw around
  ``4.5 - 8 * failure_ratio`` (sd 0.9, clipped to 1..5): a subscriber whose
  sessions all went well that day is content (about 4.5), one with one session
  in ten failed is lukewarm (about 3.7), one with a third failed is angry
  (about 1.8): people notice failures long before most of their sessions fail.
  ``failure_ratio`` is the share of the subscriber's sessions that failed that
  day, supplied by the twin.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

P_NO_ANSWER = 0.15
P_OPT_OUT = 0.03
P_NO_INPUT = 0.05
CONTENT_MEAN = 4.5
ANGER_SLOPE = 8.0
RATING_SD = 0.9


class DefaultBehaviour:
    """Deterministic, failure-sensitive answers for simulated subscribers."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._draws: defaultdict[str, int] = defaultdict(int)

    def respond(self, phone_number: str, failure_ratio: float) -> str:
        """What the subscriber does at the next prompt: a key, ``"none"`` or ``"no_answer"``."""
        if not 0.0 <= failure_ratio <= 1.0:
            raise ValueError(f"failure_ratio must be in [0, 1], got {failure_ratio}")
        draw = self._draws[phone_number]
        self._draws[phone_number] = draw + 1
        digest = hashlib.sha256(f"{self.seed}|{phone_number}|{draw}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        u = rng.random()
        if u < P_NO_ANSWER:
            return "no_answer"
        if u < P_NO_ANSWER + P_OPT_OUT:
            return "9"
        if u < P_NO_ANSWER + P_OPT_OUT + P_NO_INPUT:
            return "none"
        mean = CONTENT_MEAN - ANGER_SLOPE * failure_ratio
        return str(min(5, max(1, round(rng.gauss(mean, RATING_SD)))))


class SimulatedSubscribers:
    """The ``subscriber`` callable of the contact centre: scenario answers first, else the model.

    A scenario answer is what that subscriber does at every prompt of every call
    (``"none"`` therefore times out twice and is recorded as no response).
    ``failure_ratio`` gives, per phone number, the share of its scenario sessions
    that failed; it is asked only for subscribers without an answer.
    """

    def __init__(
        self,
        answers: Mapping[str, str],
        default: DefaultBehaviour,
        failure_ratio: Callable[[str], float],
    ) -> None:
        self._answers = dict(answers)
        self._default = default
        self._failure_ratio = failure_ratio

    def __call__(self, phone_number: str, attributes: Mapping[str, str]) -> str:
        """What ``phone_number`` does at the next prompt (or at ring time)."""
        if phone_number in self._answers:
            return self._answers[phone_number]
        return self._default.respond(phone_number, self._failure_ratio(phone_number))


class FailureRatios:
    """Share of each subscriber's scenario sessions that failed: the model's input.

    Counted over every well-formed session of the scenario, whenever it happens, so a
    subscriber called in the morning answers for the whole day.
    """

    def __init__(self, records: Iterable[Any]) -> None:
        sessions: Counter[str] = Counter()
        failures: Counter[str] = Counter()
        for record in records:
            if isinstance(record, dict) and isinstance(record.get("success"), bool):
                phone = record.get("phone_number")
                if isinstance(phone, str):
                    sessions[phone] += 1
                    failures[phone] += not record["success"]
        self._ratio = {p: failures[p] / n for p, n in sessions.items()}

    def __call__(self, phone_number: str) -> float:
        return self._ratio.get(phone_number, 0.0)
