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


class TableStream:
    """A streamed table's changes as Lambda delivers them to a filtered event source mapping.

    ``changes(kind)`` returns the records written since the last call whose NEW image has
    ``LastChange = kind``, in Lambda's DynamoDB stream event shape.
    """

    def __init__(self, dynamodb: Any, table: str = "Subscriber_table") -> None:
        import boto3

        region = dynamodb.meta.region_name
        # The classic endpoint: botocore derives an account-based host moto does not route.
        self._streams = boto3.client(
            "dynamodbstreams",
            region_name=region,
            endpoint_url=f"https://streams.dynamodb.{region}.amazonaws.com",
        )
        self._region = region
        arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        (shard,) = self._streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        self._iterator = self._streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
        )["ShardIterator"]

    def changes(self, kind: str) -> dict[str, Any]:
        """The new records of ``kind`` as a Lambda event (``{"Records": [...]}``)."""
        response = self._streams.get_records(ShardIterator=self._iterator)
        self._iterator = response["NextShardIterator"]
        records = []
        for record in response["Records"]:
            if record["dynamodb"].get("NewImage", {}).get("LastChange") != {"S": kind}:
                continue
            dynamodb = dict(record["dynamodb"])
            dynamodb["ApproximateCreationDateTime"] = 1795605303.0
            records.append(
                {
                    "eventID": record["eventID"],
                    "eventName": record["eventName"],
                    "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb",
                    "awsRegion": self._region,
                    "dynamodb": dynamodb,
                }
            )
        return {"Records": records}
