"""The second store every recording is copied to (话务语音异地灾备), behind one small seam.

Two implementations of :class:`CopyStore`:

* :class:`DirectoryStore`: a folder mounted from the disaster-recovery site
  (NFS, SMB, a replicated volume). A copy is written to a temporary name,
  flushed to disk (``fsync``) and renamed, so a half-written file never has
  the final name.
* :class:`S3Store`: an S3-compatible object store (AWS S3, MinIO, Ceph RGW,
  OSS/COS in S3 mode) through boto3. Credentials come from boto3's usual
  chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a profile, an
  instance role); nothing secret is in our settings.

Every method blocks (disk or network I/O): callers run them in a thread
(``asyncio.to_thread``). A store never decides that a copy is good: the
archive (:mod:`telephony.recording.archive`) reads each copy back with
:meth:`CopyStore.sha256` and compares it with the original's.

:func:`open_store` builds one from ``TELEPHONY_RECORDINGS_OFFSITE``: a path or
``file:///path`` for a folder, ``s3://BUCKET/PREFIX`` for an object store.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import threading
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

CHUNK = 1024 * 1024


class CopyStore(Protocol):
    """Where the off-site copies are; every method blocks (run it in a thread)."""

    def describe(self) -> str:
        """The store, for logs and reports (never a credential)."""
        ...

    def location(self, key: str) -> str:
        """Where the copy named ``key`` is, as a URL-like text for the ``recordings`` row."""
        ...

    def put(self, key: str, source: Path) -> None:
        """Copy the file ``source`` to ``key`` (replacing what is there)."""
        ...

    def sha256(self, key: str) -> str | None:
        """The SHA-256 (hex) of the copy as the store gives it back; None when there is none."""
        ...

    def get(self, key: str, target: Path) -> None:
        """Write the copy ``key`` to the file ``target`` (raises FileNotFoundError if none)."""
        ...

    def remove(self, key: str) -> None:
        """Remove the copy ``key``; nothing there is not an error."""
        ...


class UnsupportedStore(ValueError):
    """``TELEPHONY_RECORDINGS_OFFSITE`` names no store this control plane can use."""


def stream_sha256(stream: BinaryIO) -> str:
    """The SHA-256 (hex) of what ``stream`` reads until its end, a megabyte at a time."""
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 (hex) of a file (raises FileNotFoundError when it is not there)."""
    with path.open("rb") as stream:
        return stream_sha256(stream)


def replace_atomically(source: BinaryIO, target: Path) -> None:
    """Write ``source`` to ``target`` through a temporary file, flushed, then renamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        with partial.open("wb") as out:
            shutil.copyfileobj(source, out, CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


class DirectoryStore:
    """Copies in a folder (a mount of the disaster-recovery site's storage)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key {key!r} leaves {self.root}")
        return path

    def describe(self) -> str:
        return f"folder {self.root}"

    def location(self, key: str) -> str:
        return str(self._path(key))

    def put(self, key: str, source: Path) -> None:
        with source.open("rb") as stream:
            replace_atomically(stream, self._path(key))

    def sha256(self, key: str) -> str | None:
        try:
            return file_sha256(self._path(key))
        except FileNotFoundError:
            return None

    def get(self, key: str, target: Path) -> None:
        with self._path(key).open("rb") as stream:
            replace_atomically(stream, target)

    def remove(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


class S3Store:
    """Copies as objects of one bucket of an S3-compatible store, through boto3.

    The client is made at first use (in the calling thread; boto3 clients are
    thread-safe once made) with short timeouts and two tries per request: a
    store that is down fails the attempt quickly, and the archive retries it
    later, so no request hangs a copy slot for long.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.region = region
        self._timeouts = (connect_timeout, read_timeout)
        self._client: Any = None
        self._lock = threading.Lock()

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                connect, read = self._timeouts
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    region_name=self.region,
                    config=Config(
                        connect_timeout=connect,
                        read_timeout=read,
                        retries={"max_attempts": 2, "mode": "standard"},
                        s3={"addressing_style": "path"},
                    ),
                )
            return self._client

    def _key(self, key: str) -> str:
        return self.prefix + key

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def put(self, key: str, source: Path) -> None:
        from boto3.s3.transfer import TransferConfig

        self._s3().upload_file(
            str(source), self.bucket, self._key(key), Config=TransferConfig(max_concurrency=2)
        )

    def _missing(self, exc: Exception) -> bool:
        from botocore.exceptions import ClientError

        if not isinstance(exc, ClientError):
            return False
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code in ("NoSuchKey", "404", "NotFound")

    def sha256(self, key: str) -> str | None:
        try:
            reply = self._s3().get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if self._missing(exc):
                return None
            raise
        body = reply["Body"]
        try:
            return stream_sha256(body)
        finally:
            body.close()

    def get(self, key: str, target: Path) -> None:
        try:
            reply = self._s3().get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if self._missing(exc):
                raise FileNotFoundError(self.location(key)) from exc
            raise
        body = reply["Body"]
        try:
            replace_atomically(body, target)
        finally:
            body.close()

    def remove(self, key: str) -> None:
        self._s3().delete_object(Bucket=self.bucket, Key=self._key(key))


def open_store(
    where: str | None, *, endpoint_url: str | None = None, region: str | None = None
) -> CopyStore | None:
    """The store ``where`` names (``TELEPHONY_RECORDINGS_OFFSITE``); None when unset.

    A plain path or ``file:///path``: :class:`DirectoryStore`;
    ``s3://BUCKET[/PREFIX]``: :class:`S3Store` (``endpoint_url`` for a store
    other than AWS). Makes no connection.
    """
    if not where:
        return None
    parts = urlsplit(where)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise UnsupportedStore(f"{where!r}: s3://BUCKET/PREFIX needs a bucket")
        return S3Store(parts.netloc, parts.path, endpoint_url=endpoint_url, region=region)
    if parts.scheme == "file":
        return DirectoryStore(Path(parts.path))
    if parts.scheme == "" and where.startswith("/"):
        return DirectoryStore(Path(where))
    raise UnsupportedStore(
        f"{where!r}: use an absolute folder path, file:///PATH or s3://BUCKET/PREFIX"
    )
