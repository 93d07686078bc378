"""The profile's episode and last answer leave out what the item already holds, so the
largest profile fits one DynamoDB write unit; what they leave out is read back exactly."""

import zoneinfo
from dataclasses import replace

from feedback_loop.adapters.dynamodb import from_item, to_item
from feedback_loop.contract import EVENT_TYPES
from feedback_loop.episodes import CONTACTED, Episode, SubscriberView
from feedback_loop.feedback import RATED, Feedback, last_feedback
from feedback_loop.ids import contact_key, engagement_id, incident_id, short_id
from feedback_loop.item_size import WRITE_UNIT_BYTES, item_size
from feedback_loop.policy import Policy
from feedback_loop.probe import MAX_CELL_LENGTH, MAX_DIMENSION_LENGTH
from feedback_loop.sentiment import update_sentiment

PHONE = "+447700900123456"  # E.164's 15 digits
TIME = "2026-11-25T09:26:30Z"
EARLIER = "2026-11-24T08:00:00Z"
# The dimensions docs/ARCHITECTURE.md states one write unit for ("One write unit").
CELL, DEVICE, VENDOR = "C" * 24, "D" * 32, "V" * 16


def _incident(kpi: str, n: int) -> str:
    return incident_id(PHONE, kpi, TIME, f"shardId-000000000000:{n}")


def _episode(**changes) -> Episode:
    first = _incident("VIDEO_STALLING", 0)
    episode = Episode(
        engagement_id=engagement_id(PHONE, "VIDEO_STALLING", TIME, first),
        incident_id=first,
        incident_type="VIDEO_STALLING",
        incident_time=TIME,
        cell=CELL,
        incident_types=("VIDEO_STALLING", *[k for k in EVENT_TYPES if k != "VIDEO_STALLING"]),
        incident_keys=(short_id(first), *[short_id(_incident("CALL_DROP", n)) for n in (1, 2, 3)]),
        status=CONTACTED,
        attempts=3,
        channel="voice",
        last_attempt_at=TIME,
        deferred_until=TIME,
    )
    return replace(episode, **changes)


def _answer(episode: Episode, previous: float = -0.37499999999999994) -> Feedback:
    update = update_sentiment(previous, 5, 0.3)
    return Feedback(
        contact_id="52a8203f-5f5d-523f-921a-7559f6bbb007",
        engagement_id=episode.engagement_id,
        incident_id="",
        incident_type=episode.incident_type,
        incident_time=episode.incident_time,
        cell=episode.cell,
        outcome=RATED,
        rating=5,
        previous_sentiment=update.previous,
        sentiment=update.sentiment,
        change_sentiment=update.change,
        received_at=TIME,
    )


def _stored(values: dict) -> dict:
    """``values`` as DynamoDB stores and returns them (numbers come back as decimals)."""
    return from_item(to_item(values))


def _largest_profile(episode: Episode, feedback: Feedback) -> dict:
    """Every list full, the longest time zone, a rated answer with 17-digit sentiments, an
    opt-out too: the largest profile the stated bounds allow."""
    return {
        "PhoneNumber": PHONE,
        "LastChange": "feedback",
        "Cell": CELL,
        "Device": DEVICE,
        "Vendor": VENDOR,
        "SeenIncidents": [short_id(_incident("CALL_QUALITY", n)) for n in range(16, 24)],
        "IncidentsVersion": 123_456,
        "Episode": episode.to_item(PHONE),
        "ContactHistory": [TIME] * Policy().max_contacts,
        "ContactVersion": 12_345,
        "AnsweredEngagement": short_id(feedback.engagement_id),
        "OptedOut": True,
        "DoNotContact": True,
        "TimeZone": max(zoneinfo.available_timezones(), key=len),
        "PreferredChannel": "voice",
        "PreferencesUpdatedAt": TIME,
        "Sentiment": feedback.sentiment,
        "FeedbackContacts": [f"{contact_key(str(n))}|no_response" for n in range(2)],
        "LastFeedback": feedback.to_item(episode),
    }


def test_the_largest_profile_the_stated_bounds_allow_fits_one_write_unit():
    # Given the largest profile, its last answer about its open episode
    episode = _episode()
    feedback = _answer(episode)
    profile = _largest_profile(episode, feedback)

    assert item_size(profile) <= WRITE_UNIT_BYTES
    # and everything left out is read back
    view = SubscriberView.from_profile(PHONE, _stored(profile))
    assert view.contact.episode == episode
    assert last_feedback(_stored(profile)) == feedback


def test_at_the_validators_longest_dimensions_the_largest_profile_takes_two_units():
    # Given the largest profile, with cell, device and vendor as long as a probe record
    # may carry them (docs/ARCHITECTURE.md states one unit for 24, 32 and 16 bytes)
    longest_cell = "C" * MAX_CELL_LENGTH
    episode = _episode(cell=longest_cell)
    profile = _largest_profile(episode, _answer(episode)) | {
        "Cell": longest_cell,
        "Device": "D" * MAX_DIMENSION_LENGTH,
        "Vendor": "V" * MAX_DIMENSION_LENGTH,
    }

    assert WRITE_UNIT_BYTES < item_size(profile) <= 2 * WRITE_UNIT_BYTES


def test_an_answer_about_an_earlier_engagement_is_whole_and_takes_at_most_two_units():
    # Given a late answer: a call answered (or a text replied to) after the next episode
    # opened, so the answer keeps its own engagement's fields (docs/ARCHITECTURE.md)
    episode = _episode()
    earlier = _answer(replace(episode, engagement_id="e" * 32, incident_time=EARLIER))
    profile = _largest_profile(episode, earlier)

    assert item_size(profile) <= 2 * WRITE_UNIT_BYTES
    assert last_feedback(_stored(profile)) == earlier


def test_an_episode_leaves_out_what_its_first_incident_implies():
    episode = _episode()

    item = episode.to_item(PHONE)

    assert "Eng" not in item
    assert item["Kpis"] == list(episode.incident_types[1:])
    assert item["Keys"] == list(episode.incident_keys[1:])
    assert Episode.from_item(_stored(item), PHONE) == episode
    # a single-incident episode has no lists at all
    alone = _episode(incident_types=("VIDEO_STALLING",), incident_keys=episode.incident_keys[:1])
    assert not {"Kpis", "Keys"} & set(alone.to_item(PHONE))
    assert Episode.from_item(alone.to_item(PHONE), PHONE) == alone


def test_an_episode_written_whole_before_is_still_read_and_an_odd_id_is_kept():
    episode = _episode()
    whole = {
        "Eng": episode.engagement_id,
        "Inc": episode.incident_id,
        "Kpi": episode.incident_type,
        "At": episode.incident_time,
        "Cell": episode.cell,
        "Kpis": list(episode.incident_types),
        "Keys": list(episode.incident_keys),
        "St": episode.status,
        "N": episode.attempts,
    }
    assert Episode.from_item(whole, None) == replace(
        episode, channel=None, last_attempt_at=None, deferred_until=None
    )
    odd = replace(episode, engagement_id="e" * 32)
    assert odd.to_item(PHONE)["Eng"] == "e" * 32
    assert Episode.from_item(odd.to_item(PHONE), PHONE) == odd


def test_an_answer_about_the_profiles_episode_leaves_its_fields_to_it():
    episode = _episode()
    feedback = _answer(episode)

    item = feedback.to_item(episode)

    assert not {"Eng", "Kpi", "Time", "Cell", "Change"} & set(item)
    image = _stored({"PhoneNumber": PHONE, "Episode": episode.to_item(PHONE), "LastFeedback": item})
    read = last_feedback(image)
    assert read == feedback
    # the change is the exact difference of the stored floats
    assert read.change_sentiment == feedback.sentiment - feedback.previous_sentiment


def test_an_answer_about_another_engagement_is_written_whole():
    episode = _episode()
    earlier = _answer(
        replace(episode, engagement_id="e" * 32, incident_time="2026-11-24T08:00:00Z")
    )

    item = earlier.to_item(episode)

    assert {"Eng", "Kpi", "Time", "Cell"} <= set(item)
    image = _stored({"PhoneNumber": PHONE, "Episode": episode.to_item(PHONE), "LastFeedback": item})
    assert last_feedback(image) == earlier


def test_the_episodes_fields_are_read_back_whatever_else_the_image_holds():
    # Given a profile whose other contact state is unreadable, or read without its key
    episode = _episode()
    feedback = _answer(episode)
    profile = _stored(_largest_profile(episode, feedback))

    assert last_feedback({**profile, "ContactHistory": "not a list"}) == feedback
    keyless = {name: value for name, value in profile.items() if name != "PhoneNumber"}
    assert SubscriberView.from_profile(PHONE, keyless).contact.episode == episode
