"""Trial weights in an artifact store (``optuna.artifacts``), where every machine reaches them.

A completed trial's checkpoint (:func:`nas.checkpoints.save_checkpoint`) is uploaded with
``optuna.artifacts.upload_artifact``, which links it to the trial (optuna-dashboard lists it
among the trial's artifacts), and its id is kept in the trial's user attr ``weights_artifact``
(:data:`nas.trial_schema.WEIGHTS_ARTIFACT`). The study config's ``study.artifacts`` names the
store (:meth:`nas.config.StudySection.artifacts_url`):

* a folder (default ``<runs_dir>/<name>/artifacts``): Optuna's ``FileSystemArtifactStore``; for
  several machines, a folder every one of them mounts at the same path;
* ``s3://bucket/prefix``: Optuna's ``Boto3ArtifactStore`` with keys ``prefix/<id>`` (the ``s3``
  extra, boto3). ``study.artifacts_endpoint`` (else ``AWS_ENDPOINT_URL_S3`` or
  ``AWS_ENDPOINT_URL``) names an S3-compatible server (MinIO, Ceph); credentials come from
  boto3's usual chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``).

Opening a store checks it (the folder is created, the bucket is asked for with ``head_bucket``),
so a wrong URL, endpoint, credentials or bucket fails at once with a one-line ValueError that
names it and the fix, not after a trial has trained.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import optuna
from optuna.artifacts import Boto3ArtifactStore, FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound

from . import trial_schema as schema
from .config import StudyConfig
from .files import written_in_one_step
from .storage import redact

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

__all__ = [
    "ArtifactNotFound",
    "FolderArtifactStore",
    "S3ArtifactStore",
    "describe_store",
    "download_weights",
    "open_artifact_store",
    "remove_weights",
    "study_artifact_store",
    "upload_weights",
]

S3_SCHEME = "s3://"
#: Environment variables boto3 reads an S3 endpoint from, in its order of precedence.
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
#: botocore client settings: an unreachable endpoint fails within seconds, not minutes.
S3_CLIENT_SETTINGS: dict[str, Any] = {
    "connect_timeout": 10,
    "read_timeout": 60,
    "retries": {"max_attempts": 3, "mode": "standard"},
}
#: Most keys one S3 DeleteObjects request takes.
_S3_DELETE_BATCH = 1000
_FIX_STORE = "set study.artifacts to a folder every worker reaches or an s3://bucket/prefix URL"


class ArtifactStoreError(ValueError):
    """The artifact store failed a read or write: the store is at fault, not the trial."""


class FolderArtifactStore(FileSystemArtifactStore):
    """Optuna's FileSystemArtifactStore on a folder, with its ``url`` for messages."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.url = str(folder)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        """Write a hidden partial file, then rename it: a full disk or a killed worker leaves no
        half-written artifact under the id export reads."""
        final = Path(self._get_filepath(artifact_id))
        with written_in_one_step(final) as partial, open(partial, "wb") as sink:
            shutil.copyfileobj(content_body, sink)


class S3ArtifactStore(Boto3ArtifactStore):
    """Optuna's Boto3ArtifactStore under a key prefix. S3 errors become one-line ValueErrors
    naming the store and the fix; a missing artifact stays ``ArtifactNotFound``."""

    def __init__(
        self, url: str, bucket: str, prefix: str, client: Any, endpoint: str, source: str
    ) -> None:
        super().__init__(bucket, client)
        self.url = url
        self.prefix = prefix
        self.endpoint = endpoint
        self.endpoint_source = source

    def key(self, artifact_id: str) -> str:
        return f"{self.prefix}/{artifact_id}" if self.prefix else artifact_id

    def open_reader(self, artifact_id: str) -> BinaryIO:
        with self.explained(f"reading artifact {artifact_id} from"):
            return super().open_reader(self.key(artifact_id))

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        with self.explained(f"writing artifact {artifact_id} to"):
            super().write(self.key(artifact_id), content_body)

    def remove(self, artifact_id: str) -> None:
        with self.explained(f"removing artifact {artifact_id} from"):
            super().remove(self.key(artifact_id))

    def remove_many(self, artifact_ids: Iterable[str]) -> set[str]:
        """Remove those of the artifacts that exist, in one listing and one DeleteObjects
        request per 1,000 keys; returns their ids."""
        wanted = {self.key(artifact_id): artifact_id for artifact_id in artifact_ids}
        if not wanted:
            return set()
        with self.explained("removing artifacts from"):
            present = []
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else ""
            )
            for page in pages:
                present += [o["Key"] for o in page.get("Contents", ()) if o["Key"] in wanted]
            for start in range(0, len(present), _S3_DELETE_BATCH):
                batch = present[start : start + _S3_DELETE_BATCH]
                answer = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
                )
                if answer.get("Errors"):
                    error = answer["Errors"][0]
                    raise ValueError(
                        f"{describe_store(self)} refused to remove {error['Key']} "
                        f"({error.get('Code')}: {error.get('Message')}); check that the "
                        "credentials may delete objects in the bucket"
                    )
        return {wanted[key] for key in present}

    @contextlib.contextmanager
    def explained(self, doing: str) -> Iterator[None]:
        """Turn botocore's errors inside the block into one-line ValueErrors with the fix."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError) as exc:
            raise ArtifactStoreError(_s3_message(exc, self, doing)) from None


def describe_store(store: ArtifactStore) -> str:
    """The store for messages: its folder, or its S3 URL and endpoint (passwords redacted)."""
    if isinstance(store, S3ArtifactStore):
        endpoint = redact(store.endpoint) if store.endpoint else "AWS's default endpoint"
        return f"artifact store {store.url} (endpoint {endpoint})"
    return f"artifact store {getattr(store, 'url', type(store).__name__)}"


def _s3_message(exc: Exception, store: S3ArtifactStore, doing: str) -> str:
    from botocore.exceptions import (
        ClientError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from botocore.exceptions import ConnectionError as EndpointError

    where = describe_store(store)
    detail = redact(" ".join(str(exc).split()))
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            f"{doing} {where}: no AWS credentials ({detail}); set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
        )
    if isinstance(exc, EndpointError | HTTPClientError):
        return (
            f"{doing} {where}: cannot reach the endpoint ({detail}); check "
            f"{store.endpoint_source or 'study.artifacts_endpoint'} and that the S3 server runs"
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchBucket"):
            return (
                f"{doing} {where}: bucket {store.bucket!r} does not exist; create it (e.g. "
                f"`aws s3 mb s3://{store.bucket}`) or fix study.artifacts"
            )
        if status in (401, 403) or code in (
            "403",
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
        ):
            return (
                f"{doing} {where}: the credentials were refused ({code}); check "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and that they may "
                f"read and write bucket {store.bucket!r}"
            )
    return (
        f"{doing} {where} failed ({type(exc).__name__}: {detail}); check study.artifacts, "
        f"{store.endpoint_source or 'study.artifacts_endpoint'} and the AWS credentials"
    )


# -- opening -------------------------------------------------------------------------------------


def open_artifact_store(url: str, endpoint: str = "") -> ArtifactStore:
    """The artifact store ``url`` names: a folder path (created) or ``s3://bucket/prefix``
    (``endpoint``: an S3-compatible server, default ``AWS_ENDPOINT_URL``), checked once here."""
    if url.startswith(S3_SCHEME):
        return _open_s3(url, endpoint)
    if not url or "://" in url:
        raise ValueError(
            f"study.artifacts {redact(url)!r} is neither a folder path nor an s3://bucket/prefix "
            f"URL; {_FIX_STORE}"
        )
    if endpoint:
        raise ValueError(
            f"study.artifacts_endpoint {redact(endpoint)!r} is set, but study.artifacts {url!r} "
            "is a folder; the endpoint applies to s3:// stores only: clear it, or use an "
            "s3://bucket/prefix URL"
        )
    folder = Path(url).expanduser().absolute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"cannot create the artifact folder {folder} ({exc.strerror}); {_FIX_STORE}"
        ) from None
    return FolderArtifactStore(folder)


def _open_s3(url: str, endpoint: str) -> S3ArtifactStore:
    bucket, _, prefix = url[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise ValueError(f"study.artifacts {url!r} names no bucket; use s3://bucket/prefix")
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise RuntimeError(
            f"study.artifacts {url!r} is an S3 store, which needs boto3; install it: "
            "pip install 'attention-nas[s3]'"
        ) from None
    source = "study.artifacts_endpoint" if endpoint else ""
    if not endpoint:
        source = next((name for name in ENDPOINT_VARIABLES if os.environ.get(name)), "")
        endpoint = os.environ.get(source, "") if source else ""
    try:
        client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint or None, config=Config(**S3_CLIENT_SETTINGS)
        )
    except ValueError as exc:  # botocore: "Invalid endpoint: ..."
        raise ValueError(
            f"{source} {redact(endpoint)!r} of artifact store {url} is not a valid endpoint "
            f"({redact(str(exc))}); give an http(s) URL such as http://127.0.0.1:9000"
        ) from None
    store = S3ArtifactStore(url, bucket, prefix.strip("/"), client, endpoint, source)
    with store.explained("opening"):
        client.head_bucket(Bucket=bucket)
    return store


def study_artifact_store(study: optuna.Study) -> ArtifactStore:
    """The artifact store named in the study's stored config (relative folders are read from
    the current folder)."""
    stored = schema.stored_config(study)
    if stored is None:
        raise ValueError(
            f"study {study.study_name!r} was not created by `nas search` (no stored config), so "
            "it names no artifact store; pass the store explicitly"
        )
    section = StudyConfig.from_dict(stored).study
    return open_artifact_store(section.artifacts_url(), section.artifacts_endpoint)


# -- a trial's weights -----------------------------------------------------------------------------


def upload_weights(store: ArtifactStore, owner: optuna.Trial | optuna.Study, path: Path) -> str:
    """Upload a weights file as an artifact of a trial (recording its id in the trial's
    ``weights_artifact``) or of a study (a supernet's); returns the id. The file itself stays
    (the caller's)."""
    what = f"trial {owner.number}" if isinstance(owner, optuna.Trial) else "the supernet"
    try:
        artifact_id = optuna.artifacts.upload_artifact(
            artifact_store=store, file_path=str(path), study_or_trial=owner
        )
    except OSError as exc:
        raise ArtifactStoreError(
            f"cannot write the weights of {what} to {describe_store(store)} "
            f"({exc.strerror or exc}); check that the folder is writable, or {_FIX_STORE}"
        ) from None
    if isinstance(owner, optuna.Trial):
        schema.WEIGHTS_ARTIFACT.set(owner, artifact_id)
    return artifact_id


def download_weights(store: ArtifactStore, artifact_id: str, path: Path) -> Path:
    """Copy artifact ``artifact_id`` to the new file ``path``; returns ``path``. Raises
    ``ArtifactNotFound`` (and writes nothing) when the store does not hold it."""
    optuna.artifacts.download_artifact(
        artifact_store=store, file_path=str(path), artifact_id=artifact_id
    )
    return path


def remove_weights(store: ArtifactStore, artifact_ids: Iterable[str]) -> set[str]:
    """Remove these artifacts from the store; returns the ids it still held. Removing an
    artifact that is already gone (another worker was first) is not an error."""
    if isinstance(store, S3ArtifactStore):
        return store.remove_many(artifact_ids)
    removed = set()
    for artifact_id in dict.fromkeys(artifact_ids):
        try:
            store.remove(artifact_id)
        except ArtifactNotFound:
            continue
        except OSError as exc:
            raise ValueError(
                f"cannot remove artifact {artifact_id} from {describe_store(store)} "
                f"({exc.strerror or exc}); check that the folder is writable"
            ) from None
        removed.add(artifact_id)
    return removed
