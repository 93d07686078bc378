"""Right to erasure: remove one subscriber from the operational tables and the lake.

The lake holds pseudonyms (``subscriber_id`` = HMAC of the phone number), which
are still personal data while the key exists, so the subscriber's records are
removed from every lake object, including older object versions of a
versioned bucket, not just hidden behind a new version.

An opt-out or do-not-contact flag outlives the erasure: the item is replaced by a
suppression record holding only the number and that flag, so a later probe record
cannot make the subscriber callable again (a new profile would start without it).

    python -m ops.erase_subscriber --phone-number +447700900123 \\
        --table Subscriber_table --bucket <lake bucket> --secret-arn <pseudonym secret>
"""

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

from feedback_loop.contract import LAKE_PREFIXES, is_e164
from feedback_loop.episodes import DO_NOT_CONTACT, OPTED_OUT
from feedback_loop.lake import decode_jsonl_gz, encode_jsonl_gz
from feedback_loop.pseudonym import subscriber_id

SUPPRESSION_FLAGS = (OPTED_OUT, DO_NOT_CONTACT)


@dataclass
class ErasureReport:
    """What was erased; ``unreadable`` lists lake objects that need a manual look."""

    subscriber_id: str
    table_item_deleted: bool = False
    suppression_kept: list[str] = field(default_factory=list)
    counter_items_deleted: int = 0
    records_removed: int = 0
    objects_rewritten: int = 0
    objects_deleted: int = 0
    versions_deleted: int = 0
    unreadable: list[str] = field(default_factory=list)


def _mentions(record: dict[str, Any], sid: str) -> bool:
    """True for a record of the subscriber, including rejected payloads that carry ``sid:<id>``."""
    return sid in json.dumps(record, ensure_ascii=False)


def _delete_counters(dynamodb: Any, table: str, phone_number: str) -> int:
    deleted = 0
    paginator = dynamodb.get_paginator("query")
    pages = paginator.paginate(
        TableName=table,
        KeyConditionExpression="PhoneNumber = :p",
        ExpressionAttributeValues={":p": {"S": phone_number}},
        ProjectionExpression="PhoneNumber, Kpi",
    )
    for page in pages:
        for item in page["Items"]:
            dynamodb.delete_item(TableName=table, Key=item)
            deleted += 1
    return deleted


def _versions_by_key(s3: Any, bucket: str, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Every stored version of every object under ``prefix`` (works unversioned too)."""
    versions: dict[str, list[dict[str, Any]]] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            versions.setdefault(version["Key"], []).append(version)
    return versions


class _LakeEraser:
    def __init__(self, s3: Any, bucket: str, sid: str, report: ErasureReport) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.sid = sid
        self.report = report

    def _read(self, key: str, version_id: str) -> list[dict[str, Any]] | None:
        body = self.s3.get_object(Bucket=self.bucket, Key=key, VersionId=version_id)["Body"]
        try:
            return decode_jsonl_gz(body.read())
        except (OSError, ValueError):
            self.report.unreadable.append(f"s3://{self.bucket}/{key}?versionId={version_id}")
            return None

    def erase_key(self, key: str, versions: list[dict[str, Any]]) -> None:
        """Rewrite the latest version without the subscriber, then purge tainted versions."""
        tainted = []
        for version in versions:
            records = self._read(key, version["VersionId"])
            if records is None or not any(_mentions(r, self.sid) for r in records):
                continue
            tainted.append(version["VersionId"])
            if not version["IsLatest"]:
                continue
            kept = [r for r in records if not _mentions(r, self.sid)]
            self.report.records_removed += len(records) - len(kept)
            if kept:
                put = self.s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=encode_jsonl_gz(kept),
                    ContentType="application/x-ndjson",
                    ContentEncoding="gzip",
                )
                # In an unversioned bucket the new content is the "null" version.
                new_version = put.get("VersionId", "null")
                tainted = [v for v in tainted if v != new_version]
                self.report.objects_rewritten += 1
            else:
                self.report.objects_deleted += 1
        for version_id in tainted:
            self.s3.delete_object(Bucket=self.bucket, Key=key, VersionId=version_id)
            self.report.versions_deleted += 1


def erase_subscriber(
    phone_number: str,
    *,
    dynamodb: Any,
    s3: Any,
    table_name: str,
    counters_table_name: str,
    bucket: str,
    pseudonym_key: bytes,
) -> ErasureReport:
    """Delete the subscriber's table item and counters and their records in every lake prefix.

    Other subscribers' records in the same objects are kept (the object is
    rewritten); an object left empty is removed. Each tainted object version is
    deleted permanently, so nothing remains to be restored. Safe to re-run.
    """
    if not is_e164(phone_number):
        raise ValueError(f"phone number must be E.164 (e.g. +447700900123), got {phone_number!r}")
    sid = subscriber_id(pseudonym_key, phone_number)
    report = ErasureReport(subscriber_id=sid)
    item_key = {"PhoneNumber": {"S": phone_number}}
    read = dynamodb.get_item(TableName=table_name, Key=item_key, ConsistentRead=True)
    item = read.get("Item", {})
    kept = [flag for flag in SUPPRESSION_FLAGS if item.get(flag) == {"BOOL": True}]
    if kept:  # replaced in one write: no moment without the flag
        suppression = {flag: {"BOOL": True} for flag in kept}
        dynamodb.put_item(TableName=table_name, Item={**item_key, **suppression})
    else:
        dynamodb.delete_item(TableName=table_name, Key=item_key)
    report.table_item_deleted = bool(set(item) - {"PhoneNumber", *kept})
    report.suppression_kept = kept
    report.counter_items_deleted = _delete_counters(dynamodb, counters_table_name, phone_number)
    eraser = _LakeEraser(s3, bucket, sid, report)
    for prefix in LAKE_PREFIXES:
        for key, versions in sorted(_versions_by_key(s3, bucket, f"{prefix}/").items()):
            eraser.erase_key(key, versions)
    return report


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; uses the default AWS credentials and region of the environment."""
    import boto3

    from feedback_loop.adapters.secrets import load_pseudonym_key

    parser = argparse.ArgumentParser(
        prog="python -m ops.erase_subscriber", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--phone-number", required=True, help="E.164 number of the subscriber")
    parser.add_argument("--table", default="Subscriber_table", help="subscriber table name")
    parser.add_argument("--counters-table", default="Subscriber_counters")
    parser.add_argument("--bucket", required=True, help="the data lake bucket")
    parser.add_argument("--secret-arn", required=True, help="ARN of the pseudonymisation key")
    parser.add_argument("--region", default=None, help="AWS region (default: from the environment)")
    args = parser.parse_args(argv)
    session = boto3.Session(region_name=args.region)
    report = erase_subscriber(
        args.phone_number,
        dynamodb=session.client("dynamodb"),
        s3=session.client("s3"),
        table_name=args.table,
        counters_table_name=args.counters_table,
        bucket=args.bucket,
        pseudonym_key=load_pseudonym_key(session.client("secretsmanager"), args.secret_arn),
    )
    print(json.dumps(asdict(report), indent=2))
    return 1 if report.unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
