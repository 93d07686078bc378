"""What a text message says: the SMS channel's counterpart of the contact flow's prompts.

The voice flow (``connect_flows/Subscriber_engagement.json``) explains each problem with
its own sentence; a text does the same in fewer words and asks for the same answer: a
digit from 1 to 5, or STOP.
"""

from collections.abc import Sequence

PROBLEMS = {
    "CALL_DROP": "some of your calls were cut off",
    "CALL_QUALITY": "the sound on some of your calls was poor",
    "LOW_BITRATE": "your mobile data was slow",
    "VIDEO_STALLING": "videos kept pausing to load",
}
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT"})


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


def reply_digits(body: str) -> str:
    """A text reply as the digits the feedback use case reads: ``9`` for an opt-out word,
    the reply itself (trimmed) otherwise."""
    text = body.strip()
    if text.upper().replace(" ", "") in OPT_OUT_WORDS:
        return "9"
    return text
