"""Trial weights in an artifact store: a folder or S3 (moto's server on 127.0.0.1), read by
export on any machine, dominated ones removed by whichever worker notices."""

import socket
import sys
import urllib.request
from pathlib import Path

import moto.settings
import optuna
import pytest
import torch
from moto.server import ThreadedMotoServer
from optuna.trial import TrialState

import nas
from nas import trial_schema as schema
from nas.artifacts import (
    S3ArtifactStore,
    download_weights,
    open_artifact_store,
    remove_weights,
    study_artifact_store,
    upload_weights,
)
from nas.checkpoints import delete_dominated_checkpoints, load_checkpoint
from nas.cli import main
from nas.config import StudyConfig
from nas.pareto import front_trials
from nas.storage import open_storage
from nas.worker import run_search, run_worker

BUCKET = "nas-weights"


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Dummy AWS credentials, and no AWS configuration of this machine in the way."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def s3(aws_env):
    """An S3 endpoint (moto's server on a free port of 127.0.0.1) holding bucket BUCKET."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    server.stop()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _s3_ids(client, prefix: str) -> set[str]:
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
    return {o["Key"].removeprefix(f"{prefix}/") for o in listing.get("Contents", ())}


def _front_ids(study: optuna.Study) -> set[str]:
    return {schema.WEIGHTS_ARTIFACT.get(t) for t in front_trials(study)}


def _stored_state(store, artifact: str, tmp_path: Path) -> dict:
    path = download_weights(store, artifact, tmp_path / f"{artifact}.pt")
    return load_checkpoint(path)


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- a search, export and nas.load, on each kind of store ----------------------------------------


@pytest.mark.parametrize("kind", ["folder", "s3"])
def test_search_keeps_exactly_the_fronts_weights_and_exports_them(
    kind, tiny_config, tmp_path, request
):
    if kind == "s3":
        endpoint, client = request.getfixturevalue("s3")
        study_section = {"artifacts": f"s3://{BUCKET}/runs/tiny", "artifacts_endpoint": endpoint}
    else:
        study_section = {"artifacts": str(tmp_path / "store")}
    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 6, **study_section}))
    study = run_search(cfg, progress=False)

    completed = study.get_trials(states=(TrialState.COMPLETE,))
    front = front_trials(study)
    assert len(front) < len(completed)  # some trials were dominated
    assert all(schema.WEIGHTS_ARTIFACT.has(t) and not schema.CHECKPOINT.has(t) for t in completed)
    stored = (
        _s3_ids(client, "runs/tiny")
        if kind == "s3"
        else {p.name for p in (tmp_path / "store").iterdir()}
    )
    assert stored == _front_ids(study)  # the dominated trials' artifacts are gone
    assert {schema.WEIGHTS_ARTIFACT.get(t) for t in completed} > stored  # and there were some
    assert not (tmp_path / "runs" / "tiny" / "checkpoints").exists()
    for trial in front:  # linked to the trial, as optuna-dashboard lists them
        (meta,) = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
        assert meta.artifact_id == schema.WEIGHTS_ARTIFACT.get(trial)
        assert meta.filename == f"trial_{trial.number}.pt"

    assert main(["export", "tiny", "--runs-dir", cfg.study.runs_dir, "--pareto"]) == 0
    store = study_artifact_store(study)
    for trial in front:
        folder = tmp_path / "runs" / "tiny" / "export" / f"trial_{trial.number}"
        exported = torch.load(folder / "weights.pt", weights_only=True)
        source = _stored_state(store, schema.WEIGHTS_ARTIFACT.get(trial), tmp_path)
        assert exported["trial"] == trial.number
        assert _same_weights(exported["state_dict"], source["state_dict"])
        model = nas.load(folder)
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_two_machines_share_one_journal_and_one_store(tiny_config, s3, tmp_path, monkeypatch):
    """Two workers in different folders (each its own runs_dir) on one journal and one S3
    endpoint; then a third folder with only the journal exports the front with its weights."""
    endpoint, client = s3
    journal = tmp_path / "shared" / "journal.log"
    journal.parent.mkdir()
    trained_on: dict[int, str] = {}
    fronts: dict[str, set[str]] = {}
    for machine, n_trials in (("a", 2), ("b", 5)):
        (tmp_path / machine).mkdir()
        monkeypatch.chdir(tmp_path / machine)
        section = {
            "n_trials": n_trials,
            "runs_dir": "runs",
            "storage": str(journal),
            "artifacts": f"s3://{BUCKET}/shared",
            "artifacts_endpoint": endpoint,
        }
        run_worker(StudyConfig.from_dict(tiny_config(study=section)), worker=len(trained_on))
        study = optuna.load_study(study_name="tiny", storage=open_storage(str(journal)))
        for trial in study.trials:
            trained_on.setdefault(trial.number, machine)
        fronts[machine] = _front_ids(study)
        assert _s3_ids(client, "shared") == fronts[machine]
    # Machine b's worker removed weights trained on a, which b's trials dominate.
    assert fronts["a"] - fronts["b"]
    assert sorted(trained_on.values()) == ["a"] * 2 + ["b"] * 3
    assert not [p for m in "ab" for p in (tmp_path / m).rglob("*") if p.suffix == ".pt"]

    (tmp_path / "c").mkdir()
    monkeypatch.chdir(tmp_path / "c")
    assert main(["export", "tiny", "--storage", str(journal), "--pareto", "--out", "out"]) == 0
    store = study_artifact_store(study)
    front = front_trials(study)
    assert sorted(p.name for p in Path("out").glob("trial_*")) == sorted(
        f"trial_{t.number}" for t in front
    )
    for trial in front:
        weights = torch.load(
            Path("out") / f"trial_{trial.number}" / "weights.pt", weights_only=True
        )
        source = _stored_state(store, schema.WEIGHTS_ARTIFACT.get(trial), tmp_path)
        assert weights["trial"] == trial.number
        assert _same_weights(weights["state_dict"], source["state_dict"])


# -- the store helpers on hand-made studies ----------------------------------------------------


def _payload_file(path: Path, number: int) -> Path:
    torch.save({"format": 1, "trial": number}, path)
    return path


def test_upload_download_remove_on_s3_honour_the_prefix(s3, tmp_path):
    endpoint, client = s3
    store = open_artifact_store(f"s3://{BUCKET}/some/prefix/", endpoint)
    assert isinstance(store, S3ArtifactStore) and store.prefix == "some/prefix"
    study = optuna.create_study()
    trials = [study.ask() for _ in range(3)]
    ids = [upload_weights(store, t, _payload_file(tmp_path / "w.pt", t.number)) for t in trials]
    assert [schema.WEIGHTS_ARTIFACT.get(t) for t in trials] == ids
    assert _s3_ids(client, "some/prefix") == set(ids)
    copy = download_weights(store, ids[1], tmp_path / "copy.pt")
    assert torch.load(copy, weights_only=True)["trial"] == trials[1].number

    assert remove_weights(store, [ids[0], ids[1], "never-uploaded"]) == {ids[0], ids[1]}
    assert remove_weights(store, [ids[0]]) == set()  # already removed: not an error
    assert _s3_ids(client, "some/prefix") == {ids[2]}
    with pytest.raises(optuna.artifacts.exceptions.ArtifactNotFound):
        download_weights(store, ids[0], tmp_path / "gone.pt")
    assert not (tmp_path / "gone.pt").exists()


def test_the_default_store_is_the_one_in_the_stored_config(tiny_config, tmp_path):
    folder = tmp_path / "elsewhere"
    cfg = StudyConfig.from_dict(tiny_config(study={"artifacts": str(folder)}))
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr(schema.STUDY_CONFIG, cfg.to_dict())
    store = open_artifact_store(str(folder))
    for values in ((0.9, 10.0), (0.8, 20.0)):  # the second is dominated
        trial = study.ask()
        upload_weights(store, trial, _payload_file(tmp_path / "w.pt", trial.number))
        study.tell(trial, values)
    assert delete_dominated_checkpoints(study) == [1]
    assert {p.name for p in folder.iterdir()} == _front_ids(study)

    # Without a stored config there is no store to name.
    bare = optuna.create_study()
    with pytest.raises(ValueError, match=r"no stored config.*pass the store explicitly"):
        study_artifact_store(bare)


def test_a_failing_store_warns_and_the_search_goes_on(tiny_config, aws_env):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    data = tiny_config(study={"artifacts": f"s3://{BUCKET}/x", "artifacts_endpoint": endpoint})
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.set_user_attr(schema.STUDY_CONFIG, StudyConfig.from_dict(data).to_dict())
    for values, artifact in (((0.9, 10.0), "a"), ((0.8, 20.0), "b")):
        trial = study.ask()
        schema.WEIGHTS_ARTIFACT.set(trial, artifact)
        study.tell(trial, values)
    with pytest.warns(RuntimeWarning, match=f"not removed: .*{endpoint}.*next completed trial"):
        assert delete_dominated_checkpoints(study) == []


# -- bad input: one line naming the URL and the fix ----------------------------------------------


def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_unreachable_endpoint(aws_env, monkeypatch):
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ValueError, match="cannot reach the endpoint") as excinfo:
        open_artifact_store(f"s3://{BUCKET}/p", endpoint)
    message = _one_line_error(excinfo)
    assert f"s3://{BUCKET}/p (endpoint {endpoint})" in message
    assert "check study.artifacts_endpoint" in message

    # From the environment, and with a password in the URL, which no message shows.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://user:secret@127.0.0.1:{_closed_port()}")
    with pytest.raises(ValueError, match="check AWS_ENDPOINT_URL and") as excinfo:
        open_artifact_store(f"s3://{BUCKET}/p")
    assert "secret" not in _one_line_error(excinfo) and "user:***@" in str(excinfo.value)

    with pytest.raises(ValueError, match=r"is not a valid endpoint.*http://127.0.0.1:9000"):
        open_artifact_store(f"s3://{BUCKET}/p", "not a url")


def test_missing_bucket(s3):
    endpoint, _ = s3
    with pytest.raises(ValueError, match="bucket 'no-such-bucket' does not exist; create") as e:
        open_artifact_store("s3://no-such-bucket/p", endpoint)
    assert "s3://no-such-bucket/p" in _one_line_error(e)


def test_refused_and_missing_credentials(s3, monkeypatch):
    endpoint, _ = s3
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto checks keys
    with pytest.raises(ValueError, match=r"credentials were refused \(403\); check AWS_ACCESS"):
        open_artifact_store(f"s3://{BUCKET}/p", endpoint)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ValueError, match=r"no AWS credentials .*set AWS_ACCESS_KEY_ID") as e:
        open_artifact_store(f"s3://{BUCKET}/p", endpoint)
    _one_line_error(e)


def test_boto3_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` raises ImportError
    with pytest.raises(
        RuntimeError, match=r"needs boto3; install it: pip install 'attention-nas\[s3\]'"
    ):
        open_artifact_store(f"s3://{BUCKET}/p")


def test_bad_urls_and_folders(tmp_path):
    with pytest.raises(ValueError, match="neither a folder path nor an s3://bucket/prefix"):
        open_artifact_store("gs://bucket/p")
    with pytest.raises(ValueError, match="user:\\*\\*\\*@"):
        open_artifact_store("https://user:secret@example.org/p")
    with pytest.raises(ValueError, match="names no bucket; use s3://bucket/prefix"):
        open_artifact_store("s3:///p")
    with pytest.raises(ValueError, match="applies to s3:// stores only"):
        open_artifact_store(str(tmp_path / "store"), "http://127.0.0.1:9000")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=f"cannot create the artifact folder {tmp_path}/file"):
        open_artifact_store(str(tmp_path / "file"))
    store = open_artifact_store(str(tmp_path / "new" / "store"))
    assert (tmp_path / "new" / "store").is_dir() and store.url == str(tmp_path / "new" / "store")


def test_a_folder_store_never_leaves_a_partial_artifact(tmp_path):
    """A write that fails midway (a full disk) leaves no file; a good one leaves only its own."""
    import errno
    import io

    from nas.artifacts import FolderArtifactStore

    class FullDisk(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            self.calls += 1
            if self.calls > 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            buffer[:4] = b"abcd"
            return 4

    store = FolderArtifactStore(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        store.write("half", io.BufferedReader(FullDisk(), buffer_size=4))
    assert list(tmp_path.iterdir()) == []
    store.write("whole", io.BytesIO(b"weights"))
    assert [p.name for p in tmp_path.iterdir()] == ["whole"]
    assert store.open_reader("whole").read() == b"weights"


def test_a_broken_store_stops_the_worker_after_the_configured_trainings(
    tiny_config, tmp_path, monkeypatch
):
    """The artifacts disk fills up after the first trial: two more trainings fail to store their
    weights (study.max_store_failures = 2), then the worker stops with one reason, their
    architecture queued again and no partial file left; once the store works the same search
    finishes."""
    import errno

    from nas.artifacts import FolderArtifactStore

    cfg = StudyConfig.from_dict(tiny_config(study={"n_trials": 5, "max_store_failures": 2}))
    write = FolderArtifactStore.write
    writes = []

    def full_after_one(self, artifact_id, body):
        writes.append(artifact_id)
        if len(writes) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, artifact_id, body)

    monkeypatch.setattr(FolderArtifactStore, "write", full_after_one)
    with pytest.raises(RuntimeError, match="2 trials in a row trained but could not store") as err:
        run_search(cfg, progress=False)
    assert "No space left on device" in str(err.value) and "max_store_failures" in str(err.value)
    study = optuna.load_study(study_name="tiny", storage=open_storage(cfg.study.storage_url()))
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    stored = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(writes) == 3 and len(failed) == 2  # three trainings in all: one stored
    assert all("No space left on device" in schema.FAIL_REASON.get(t) for t in failed)
    assert failed[1].user_attrs.get("retry_of") == failed[0].number  # queued again
    assert failed[1].params == failed[0].params
    assert not any(t.state == TrialState.RUNNING for t in study.trials)
    folder = Path(cfg.study.runs_dir) / "tiny" / "artifacts"
    assert [p.name for p in folder.iterdir()] == [schema.WEIGHTS_ARTIFACT.get(stored[0])]

    monkeypatch.setattr(FolderArtifactStore, "write", write)  # the disk freed
    run_search(cfg, progress=False)
    study = optuna.load_study(study_name="tiny", storage=open_storage(cfg.study.storage_url()))
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 5 and all(schema.WEIGHTS_ARTIFACT.has(t) for t in complete)


def test_an_s3_server_killed_mid_search_costs_at_most_the_configured_trainings(
    tiny_config, aws_env, monkeypatch
):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    study_section = {"artifacts": f"s3://{BUCKET}/runs/tiny", "artifacts_endpoint": endpoint}
    cfg = StudyConfig.from_dict(
        tiny_config(study={"n_trials": 5, "max_store_failures": 2, **study_section})
    )
    write = S3ArtifactStore.write
    writes = []

    def killed_after_one(self, artifact_id, body):
        writes.append(artifact_id)
        if len(writes) == 2:
            server.stop()  # the store goes away mid-search
        write(self, artifact_id, body)

    monkeypatch.setattr(S3ArtifactStore, "write", killed_after_one)
    with pytest.raises(RuntimeError, match="2 trials in a row trained but could not store"):
        run_search(cfg, progress=False)
    assert len(writes) == 3  # one stored, then exactly the configured two
    study = optuna.load_study(study_name="tiny", storage=open_storage(cfg.study.storage_url()))
    assert sum(t.state == TrialState.FAIL for t in study.trials) == 2
    assert not any(t.state == TrialState.RUNNING for t in study.trials)
