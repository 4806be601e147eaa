"""The S3 backend (boto3): any S3 API (AWS, MinIO, moto) through the standard AWS
variables, ``AWS_ENDPOINT_URL`` included."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from botocore import exceptions as bx

from renderer.errors import ObjectNotFound, StorageError
from renderer.storage.base import (
    DEFAULT_CONTENT_TYPE,
    ObjectInfo,
    Store,
    check_key,
    check_metadata,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient


_FIX_CREDENTIALS = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
_FIX_ENDPOINT = "check AWS_ENDPOINT_URL (unset it for AWS itself) and the network"


class S3Store(Store):
    """Objects in an S3 bucket (or an S3-compatible service) under a key prefix, via boto3.

    Configured as boto3 is: the standard AWS variables and files for credentials and region,
    ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` for another service (MinIO, Ceph, moto).
    Connections time out after 3 s with one retry, so an unreachable endpoint fails in
    seconds. Metadata travels as S3 user metadata; objects are written in one request.
    """

    connect_timeout = 3.0
    read_timeout = 60.0
    max_attempts = 2  # the first try and one retry
    page_size = 1000  # keys per list request (S3's maximum)

    def __init__(self, bucket: str, prefix: str = "", client: BaseClient | None = None) -> None:
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self._client = client
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def client(self) -> BaseClient:
        """The boto3 S3 client, made on first use (opening a store never touches the network)."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> BaseClient:
        # boto3 and botocore.config take ~0.15 s to import: only a store that talks to S3
        # pays for them, not every command that opens a folder store.
        import boto3
        from botocore.config import Config

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        config = Config(
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retries={"total_max_attempts": self.max_attempts, "mode": "standard"},
        )
        try:
            return boto3.session.Session().client(
                "s3", endpoint_url=endpoint or None, config=config
            )
        except (bx.BotoCoreError, ValueError) as error:
            raise StorageError(f"cannot set up the S3 client: {error}", _FIX_ENDPOINT) from error

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    @contextlib.contextmanager
    def _errors(self, action: str, key: str = "") -> Iterator[None]:
        try:
            yield
        except (bx.ClientError, bx.BotoCoreError) as error:
            raise self._error(error, action, key) from error

    def _error(self, error: Exception, action: str, key: str) -> StorageError:
        """A one-line StorageError naming the cause and the fix for a boto3 error."""
        where = f"{self.url}{key}"
        if isinstance(error, bx.NoCredentialsError | bx.PartialCredentialsError):
            return StorageError(f"no AWS credentials to {action} {where}", _FIX_CREDENTIALS)
        if isinstance(error, bx.ConnectionError | bx.HTTPClientError):  # refused, timeouts, TLS
            endpoint = self.client.meta.endpoint_url
            return StorageError(f"cannot reach the S3 endpoint {endpoint}: {error}", _FIX_ENDPOINT)
        if isinstance(error, bx.ClientError):
            info = error.response.get("Error", {})
            code, message = str(info.get("Code", "")), str(info.get("Message", "")).strip()
            if code in ("NoSuchKey", "404", "NotFound"):
                return ObjectNotFound(f"no object {where}", "check the key")
            if code == "NoSuchBucket":
                return StorageError(
                    f"S3 bucket {self.bucket!r} does not exist",
                    "create it, or fix the bucket in RENDERER_STORAGE",
                )
            if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
                return StorageError(
                    f"access denied to {action} {where}",
                    "grant these credentials access to the bucket, or use other credentials",
                )
            if code in (
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "ExpiredToken",
                "InvalidToken",
                "TokenRefreshRequired",
            ):
                return StorageError(f"S3 refused the credentials ({code})", _FIX_CREDENTIALS)
            return StorageError(
                f"S3 could not {action} {where}: {code} {message}".rstrip(),
                "retry later; if it persists, check the bucket and AWS_ENDPOINT_URL",
            )
        return StorageError(
            f"S3 could not {action} {where}: {error}",
            "check the AWS configuration (AWS_* variables, ~/.aws)",
        )

    def put(
        self,
        key: str,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        full, meta = self._key(key), check_metadata(metadata)
        content_type = content_type or DEFAULT_CONTENT_TYPE
        with self._errors("write", key):
            response = self.client.put_object(
                Bucket=self.bucket, Key=full, Body=data, Metadata=meta, ContentType=content_type
            )
        etag = response.get("ETag", "").strip('"')
        return ObjectInfo(key, len(data), etag, meta, content_type, None)

    def get(self, key: str) -> bytes:
        full = self._key(key)
        with self._errors("read", key):
            response = self.client.get_object(Bucket=self.bucket, Key=full)
            data: bytes = response["Body"].read()
        return data

    def head(self, key: str) -> ObjectInfo | None:
        full = self._key(key)
        try:
            with self._errors("read", key):
                response = self.client.head_object(Bucket=self.bucket, Key=full)
        except ObjectNotFound:
            return None
        return ObjectInfo(
            key,
            response["ContentLength"],
            response.get("ETag", "").strip('"'),
            {k.lower(): v for k, v in response.get("Metadata", {}).items()},
            response.get("ContentType") or DEFAULT_CONTENT_TYPE,
            response["LastModified"].timestamp() if "LastModified" in response else None,
        )

    def _list(self, prefix: str, checksums: bool) -> Iterator[ObjectInfo]:
        # The listing carries every object's etag: checksums cost nothing here.
        with self._errors("list", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=self.prefix + prefix,
                PaginationConfig={"PageSize": self.page_size},
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        item["Key"][len(self.prefix) :],
                        item["Size"],
                        item.get("ETag", "").strip('"'),
                        {},
                        None,
                        item["LastModified"].timestamp() if "LastModified" in item else None,
                    )

    def delete(self, key: str) -> None:
        full = self._key(key)
        with self._errors("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=full)

    def move(self, key: str, new_key: str) -> None:
        source, target = self._key(key), self._key(new_key)
        if source == target:
            if not self.exists(key):
                raise ObjectNotFound(f"no object {self.url}{key} to move", "check the key")
            return
        with self._errors("move", key):
            # Copy keeps metadata and content type (MetadataDirective COPY); single request up
            # to 5 GB, like put.
            self.client.copy_object(
                Bucket=self.bucket, Key=target, CopySource={"Bucket": self.bucket, "Key": source}
            )
            self.client.delete_object(Bucket=self.bucket, Key=source)
