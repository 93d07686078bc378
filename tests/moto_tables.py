"""The contract's DynamoDB tables (docs/ARCHITECTURE.md), created in moto by every test layer.

One definition, so a key change in the contract is made once for the tests too.
"""

from typing import Any

TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "Subscriber_table": ("PhoneNumber",),
    "Subscriber_counters": ("PhoneNumber", "Kpi"),
    "Idempotency_table": ("id",),
}
STREAMED = {"Subscriber_table": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}}


def create_tables(dynamodb: Any, *names: str) -> None:
    """Create ``names`` (default: all contract tables) with their keys and streams."""
    for name in names or tuple(TABLE_KEYS):
        keys = TABLE_KEYS[name]
        extra = {"StreamSpecification": STREAMED[name]} if name in STREAMED else {}
        dynamodb.create_table(
            TableName=name,
            KeySchema=[
                {"AttributeName": key, "KeyType": kind}
                for key, kind in zip(keys, ("HASH", "RANGE"), strict=False)
            ],
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"} for key in keys],
            BillingMode="PAY_PER_REQUEST",
            **extra,
        )
