"""A text reply read as the digits of the voice menu: ratings, and opt-outs honoured when
in doubt (a missed opt-out is far worse than a lost rating)."""

import pytest

from feedback_loop.texts import OPT_OUT_WORDS, reply_digits

OPT_OUT = "9"


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        "stop",
        "  Stop \n",
        "Stop.",
        "stop!",
        "STOP!!!",
        '"stop"',
        "STOP please",
        "Please stop",
        "please, STOP.",
        "Stop calling me",
        "Stop texting me. Thanks",
        "unsubscribe",
        "Unsubscribe me",
        "opt out",
        "Opt-out",
        "please opt out",
        "OPTOUT",
        "stop all",
        "cancel",
        "QUIT.",
        "end",
        "4 stop",
        "Remove me",  # End User Messaging's required keywords: AWS opts these numbers out
        "arret",
        "TD",
        "\uff33\uff34\uff2f\uff30",  # full-width STOP
    ],
)
def test_an_opt_out_word_anywhere_in_the_reply_is_an_opt_out(body):
    assert reply_digits(body) == OPT_OUT


@pytest.mark.parametrize("word", sorted(OPT_OUT_WORDS))
def test_every_opt_out_word_is_an_opt_out_in_any_case_and_with_punctuation(word):
    for body in (word, word.lower(), word.title(), f"{word}.", f" {word.lower()}! "):
        assert reply_digits(body) == OPT_OUT, body


@pytest.mark.parametrize(
    ("body", "digits"),
    [("4", "4"), ("4.", "4"), (" 4 ", "4"), ("4!", "4"), ("1", "1"), ("5\n", "5"), ("9", "9")],
)
def test_a_rating_stays_a_rating_with_punctuation_and_whitespace_around_it(body, digits):
    assert reply_digits(body) == digits


@pytest.mark.parametrize("body", ["", "thanks", "stopped working", "4/5", "12", "non-stopping"])
def test_a_reply_without_an_opt_out_word_is_not_an_opt_out(body):
    assert reply_digits(body) != OPT_OUT
