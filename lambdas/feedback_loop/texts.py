"""What a text message says: the SMS channel's counterpart of the contact flow's prompts.

The voice flow (``connect_flows/Subscriber_engagement.json``) explains each problem with
its own sentence; a text does the same in fewer words and asks for the same answer: a
digit from 1 to 5, or STOP.
"""

import re
import unicodedata
from collections.abc import Sequence
from itertools import pairwise

PROBLEMS = {
    "CALL_DROP": "some of your calls were cut off",
    "CALL_QUALITY": "the sound on some of your calls was poor",
    "LOW_BITRATE": "your mobile data was slow",
    "VIDEO_STALLING": "videos kept pausing to load",
}
# End User Messaging's required opt-out keywords ("Required opt-out keywords", AWS End User
# Messaging SMS User Guide: ARRET to UNSUBSCRIBE; OPT-OUT reads as OPT OUT, joined below),
# and STOPALL: a number that replies any of them is opted out of our texts by AWS itself,
# so it must be opted out of our calls too.
OPT_OUT_WORDS = frozenset(
    {"ARRET", "CANCEL", "END", "OPTOUT", "QUIT", "REMOVE", "STOP", "STOPALL", "TD", "UNSUBSCRIBE"}
)
# A run of letters: a reply's words, whatever punctuation, digits or spaces are between them.
_WORD = re.compile(r"[^\W\d_]+")
# Punctuation and whitespace around a reply ("4." is the rating 4).
_AROUND = re.compile(r"^[\W_]+|[\W_]+$")


def rating_request(incident_types: Sequence[str]) -> str:
    """The text asking how the episode's problems affected the subscriber (<= 320 chars)."""
    problems = [PROBLEMS[kind] for kind in incident_types if kind in PROBLEMS]
    if not problems:
        said = "we had a problem with our service on your phone"
    elif len(problems) == 1:
        said = problems[0]
    else:
        said = ", ".join(problems[:-1]) + " and " + problems[-1]
    return (
        f"Your mobile network here. Recently {said}; we are sorry. How much did it affect "
        "you? Reply 1 (very poor) to 5 (very good). Reply STOP to opt out."
    )


def is_opt_out(body: str) -> bool:
    """True when an opt-out word is one of the reply's words, in any case, with anything
    around it: ``Stop.``, ``stop!``, ``STOP please``, ``Please stop``, ``opt-out``.

    Two adjacent words count as one too (``opt out``, ``stop all``), and compatibility
    forms read as their plain letters (a full-width STOP). A reply is not read for
    what it means otherwise: when in doubt the opt-out is honoured ("don't stop" opts
    out), since a missed opt-out is far worse than a lost rating.
    """
    words = _WORD.findall(unicodedata.normalize("NFKC", body).upper())
    pairs = (first + second for first, second in pairwise(words))
    return any(word in OPT_OUT_WORDS for word in (*words, *pairs))


def reply_digits(body: str) -> str:
    """A text reply as the digits the feedback use case reads: ``9`` for an opt-out
    (:func:`is_opt_out`), otherwise the reply without the whitespace and punctuation
    around it (``4.`` is ``4``)."""
    if is_opt_out(body):
        return "9"
    return _AROUND.sub("", body)
