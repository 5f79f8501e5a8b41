"""Blob storage for audio and transcripts: one interface, two backends.

* :class:`LocalStorage` - files under a directory (embedded default, `kimi-asr up`).
* :class:`S3Storage` - any S3 API (AWS, MinIO, moto) via boto3; ``bucket``, ``prefix``,
  ``endpoint_url`` and ``region`` come from settings. Uploads use boto3's managed
  (multipart) transfer from a file object, so big files are streamed.

Keys are relative (``audio/<job>``, ``transcripts/<job>.json``). Backend errors are raised
as :class:`StorageError` (transient: the worker retries). :func:`parse_s3_uri`,
:class:`S3Input` read user-named objects (``s3_uri``, ``s3_prefix``, manifests).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

from kimi_model.errors import KimiError


class StorageError(KimiError):
    code = "storage_error"
    permanent = False


class NotFoundError(StorageError):
    code = "not_found"
    permanent = True


class Storage(Protocol):
    def put_file(self, key: str, fileobj: BinaryIO) -> None: ...
    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def download(self, key: str, fileobj: BinaryIO) -> None: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def check(self) -> None: ...


class LocalStorage:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root not in p.parents:
            raise StorageError(f"bad storage key {key!r}")
        return p

    def put_file(self, key: str, fileobj: BinaryIO) -> None:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(fileobj, f, 1 << 20)
            os.replace(tmp, p)   # atomic: readers never see half a file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        import io
        self.put_file(key, io.BytesIO(data))

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as e:
            raise NotFoundError(f"{key} not found") from e

    def download(self, key: str, fileobj: BinaryIO) -> None:
        try:
            with open(self._path(key), "rb") as f:
                shutil.copyfileobj(f, fileobj, 1 << 20)
        except FileNotFoundError as e:
            raise NotFoundError(f"{key} not found") from e

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"{self.root} is not writable")


def make_s3_client(endpoint_url: str = "", region: str = "us-east-1"):
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region or None,
                        config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                      connect_timeout=10, read_timeout=60))


class S3Storage:
    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str = "", region: str = "us-east-1",
                 client=None):
        self.bucket = bucket
        self.prefix = prefix
        self.client = client or make_s3_client(endpoint_url, region)

    def _k(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def _wrap(self, e: Exception, key: str) -> StorageError:
        from botocore.exceptions import ClientError
        if isinstance(e, ClientError) and e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return NotFoundError(f"s3://{self.bucket}/{self._k(key)} not found")
        return StorageError(f"S3 error on s3://{self.bucket}/{self._k(key)}: {e}")

    def put_file(self, key: str, fileobj: BinaryIO) -> None:
        try:
            self.client.upload_fileobj(fileobj, self.bucket, self._k(key))
        except Exception as e:  # noqa: BLE001 - boto raises many kinds
            raise self._wrap(e, key) from e

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data, ContentType=content_type)
        except Exception as e:  # noqa: BLE001
            raise self._wrap(e, key) from e

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._k(key))["Body"].read()
        except Exception as e:  # noqa: BLE001
            raise self._wrap(e, key) from e

    def download(self, key: str, fileobj: BinaryIO) -> None:
        try:
            self.client.download_fileobj(self.bucket, self._k(key), fileobj)
        except Exception as e:  # noqa: BLE001
            raise self._wrap(e, key) from e

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._k(key))
        except Exception as e:  # noqa: BLE001
            raise self._wrap(e, key) from e

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._k(key))
            return True
        except Exception as e:  # noqa: BLE001
            if isinstance(self._wrap(e, key), NotFoundError) or "404" in str(e):
                return False
            raise self._wrap(e, key) from e

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as e:  # noqa: BLE001
            raise StorageError(f"bucket {self.bucket} not reachable: {e}") from e


def make_storage(settings) -> Storage:
    if settings.storage_backend == "s3":
        return S3Storage(settings.s3_bucket, settings.s3_prefix, settings.s3_endpoint_url, settings.s3_region)
    return LocalStorage(settings.storage_root)


# --- user-named S3 objects -----------------------------------------------------

class BadS3URIError(KimiError):
    code = "invalid_s3_uri"
    permanent = True


def parse_s3_uri(uri: str, allowed_buckets: tuple[str, ...] = (), *, prefix_ok: bool = False) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise BadS3URIError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket or (not key and not prefix_ok):
        raise BadS3URIError(f"s3 URI needs s3://bucket/key: {uri!r}")
    if allowed_buckets and bucket not in allowed_buckets:
        raise BadS3URIError(f"bucket {bucket!r} is not an allowed input bucket")
    return bucket, key


class S3Input:
    """Reads objects the user names (input audio, prefixes, manifests)."""

    def __init__(self, settings, client=None):
        self.settings = settings
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = make_s3_client(self.settings.s3_endpoint_url, self.settings.s3_region)
        return self._client

    def _err(self, e: Exception, uri: str) -> KimiError:
        from botocore.exceptions import ClientError
        if isinstance(e, ClientError):
            code = e.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NoSuchBucket", "403", "AccessDenied"):
                err = NotFoundError(f"{uri}: {code}")
                err.code = "s3_object_not_found"
                return err
        return StorageError(f"S3 error reading {uri}: {e}")

    def head(self, uri: str) -> int:
        bucket, key = parse_s3_uri(uri, self.settings.s3_allowed_input_buckets)
        try:
            return int(self.client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except Exception as e:  # noqa: BLE001
            raise self._err(e, uri) from e

    def download(self, uri: str, fileobj: BinaryIO) -> None:
        bucket, key = parse_s3_uri(uri, self.settings.s3_allowed_input_buckets)
        try:
            self.client.download_fileobj(bucket, key, fileobj)
        except Exception as e:  # noqa: BLE001
            raise self._err(e, uri) from e

    def read_text(self, uri: str, max_bytes: int) -> str:
        bucket, key = parse_s3_uri(uri, self.settings.s3_allowed_input_buckets)
        try:
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"].read(max_bytes + 1)
        except Exception as e:  # noqa: BLE001
            raise self._err(e, uri) from e
        if len(body) > max_bytes:
            raise BadS3URIError(f"{uri} is larger than {max_bytes} bytes")
        return body.decode("utf-8-sig")

    def list_prefix(self, uri: str, limit: int) -> list[str]:
        bucket, prefix = parse_s3_uri(uri, self.settings.s3_allowed_input_buckets, prefix_ok=True)
        out: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith("/") or obj.get("Size", 1) == 0:
                        continue
                    out.append(f"s3://{bucket}/{obj['Key']}")
                    if len(out) > limit:
                        return out
        except Exception as e:  # noqa: BLE001
            raise self._err(e, uri) from e
        return out
