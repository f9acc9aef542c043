"""dtcore.data's download of D4RL files, against a loopback HTTP server serving a file the test
writes (no internet here): atomic write, sha256 check, fast offline failure."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
import time

import h5py
import numpy as np
import pytest

from dtcore.data import load_dataset
from dtcore.d4rl import DatasetDownloadError, d4rl_url, data_dir, download_d4rl


@pytest.fixture
def served(tmp_path):
    """A small D4RL-layout HDF5 file served on 127.0.0.1; yields (url, sha256, bytes)."""
    root = tmp_path / "server"
    root.mkdir()
    n = 30
    rng = np.random.default_rng(0)
    terminals = np.zeros(n, bool)
    terminals[[9, 19, 29]] = True
    with h5py.File(root / "hopper_medium-v2.hdf5", "w") as f:
        obs = rng.normal(size=(n, 11)).astype(np.float32)
        f["observations"], f["next_observations"] = obs, obs
        f["actions"] = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
        f["rewards"] = rng.normal(size=n).astype(np.float32)
        f["terminals"], f["timeouts"] = terminals, np.zeros(n, bool)
    blob = (root / "hopper_medium-v2.hdf5").read_bytes()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hopper_medium-v2.hdf5"
        yield url, hashlib.sha256(blob).hexdigest(), blob
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_the_url_is_d4rls_and_the_folder_follows_dtcore_data_dir(monkeypatch, tmp_path):
    assert d4rl_url("hopper") == ("http://rail.eecs.berkeley.edu/datasets/offline_rl/"
                                  "gym_mujoco_v2/hopper_medium-v2.hdf5")
    assert d4rl_url("walker2d", "expert").endswith("/walker2d_expert-v2.hdf5")
    with pytest.raises(ValueError, match="kind"):
        d4rl_url("hopper", "medium-replay-x")
    monkeypatch.setenv("DTCORE_DATA_DIR", str(tmp_path / "d4rl"))
    assert data_dir() == tmp_path / "d4rl"
    monkeypatch.delenv("DTCORE_DATA_DIR")
    assert data_dir().parts[-2:] == (".d4rl", "datasets")


def test_a_download_from_a_loopback_server_is_verified_written_and_loadable(served, tmp_path):
    url, digest, blob = served
    dest = tmp_path / "data"
    path = download_d4rl("hopper", data_dir=dest, url=url, sha256=digest)
    assert path == dest / "hopper_medium-v2.hdf5"
    assert path.read_bytes() == blob
    assert sorted(p.name for p in dest.iterdir()) == ["hopper_medium-v2.hdf5"]  # no temp file left
    ds = load_dataset(path, env="hopper")
    assert ds.label == "D4RL" and ds.stats().n_trajectories == 3


def test_a_present_file_is_used_without_touching_the_network(tmp_path):
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "hopper_random-v2.hdf5").write_bytes(b"already here")
    path = download_d4rl("hopper", "random", data_dir=dest, url="http://127.0.0.1:9/never")
    assert path.read_bytes() == b"already here"


def test_a_checksum_mismatch_is_refused_and_leaves_no_partial_file(served, tmp_path):
    url, digest, _ = served
    dest = tmp_path / "data"
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DatasetDownloadError, match="sha256") as err:
        download_d4rl("hopper", data_dir=dest, url=url, sha256=wrong)
    assert "hopper_medium-v2.hdf5" in str(err.value) and digest in str(err.value)
    assert list(dest.iterdir()) == []


def test_offline_the_download_fails_fast_naming_the_file_and_where_to_put_it(tmp_path):
    with socket.socket() as s:  # a port with nothing listening: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "data"
    t0 = time.perf_counter()
    with pytest.raises(DatasetDownloadError) as err:
        download_d4rl("walker2d", "expert", data_dir=dest,
                      url=f"http://127.0.0.1:{port}/walker2d_expert-v2.hdf5")
    assert time.perf_counter() - t0 < 5
    msg = str(err.value)
    assert "walker2d_expert-v2.hdf5" in msg and str(dest / "walker2d_expert-v2.hdf5") in msg
    assert "DTCORE_DATA_DIR" in msg
    assert list(dest.iterdir()) == []
