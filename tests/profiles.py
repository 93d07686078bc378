"""Subscriber profiles as the handlers leave them, for tests that start mid-way.

``open_episode_item`` is the profile of a subscriber whose engagement ``message`` was
decided and not contacted yet (what Read_after_incident writes), in DynamoDB JSON.
"""

from typing import Any

from feedback_loop.adapters.dynamodb import to_item
from feedback_loop.episodes import Episode
from feedback_loop.ids import short_id
from feedback_loop.messages import EngagementMessage


def open_episode_item(message: EngagementMessage, **profile: Any) -> dict[str, Any]:
    """The profile item with ``message``'s episode open (``profile`` adds attributes)."""
    episode = Episode(
        engagement_id=message.engagement_id,
        incident_id=message.incident_id,
        incident_type=message.incident_type,
        incident_time=message.incident_time,
        cell=message.cell,
        incident_types=(message.incident_type,),
        incident_keys=(short_id(message.incident_id),),
    )
    item = {
        "PhoneNumber": message.phone_number,
        "Episode": episode.to_item(message.phone_number),
        "ContactVersion": 1,
    }
    return to_item({**item, **profile})
