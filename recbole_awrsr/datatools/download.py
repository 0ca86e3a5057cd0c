"""Fetching a dataset's official archive, checking its SHA-256, and converting it.

Only ML-1M has an official archive that can be fetched without an account
(GroupLens). Amazon 2014 and Kaggle's anime files are behind request forms or
logins, so ``download`` explains the manual steps for them instead.

No SHA-256 is pinned for ``ml-1m.zip`` yet: this code was written on a machine
without network, and a hash that was not computed from the real file would be
worse than none. GroupLens publishes the archive's MD5 (``ml-1m.zip.md5`` beside
it; the same value is pinned in several public download scripts), so that one is
pinned: a download whose MD5 matches is converted (and its SHA-256 printed, for
pinning); without any pin, a download stops after fetching and prints the
archive's SHA-256, and the user confirms it with ``--sha256``. With a pinned or
given hash, a mismatch deletes the file and fails.
"""

import os
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass

from recbole_awrsr.datatools.convert import amazon_category, check_dataset, convert
from recbole_awrsr.datatools.convert.source import file_digest
from recbole_awrsr.errors import DownloadError
from recbole_awrsr.files import atomic_path

#: seconds to wait for a connection or a read; without network, fail fast
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Archive:
    """An official download: where it is, what it is called, and its checksums when known."""

    url: str
    filename: str
    sha256: str = None  # None: not pinned yet (see the module docstring)
    md5: str = None  # the publisher's own checksum, where it gives one


ARCHIVES = {
    "ml-1m": Archive("https://files.grouplens.org/datasets/movielens/ml-1m.zip", "ml-1m.zip",
                     md5="c4d9eecfca2ab87c1945afe126590906"),
}

#: where to get the raw files by hand, for datasets without a fetchable archive
MANUAL_SOURCES = {
    "anime": ("Kaggle's 'Anime Recommendations Database' "
              "(https://www.kaggle.com/datasets/CooperUnion/anime-recommendations-database, "
              "needs a Kaggle login)",
              "the file rating.csv (and anime.csv, for the .item file)", "rating.csv"),
    "pairs": ("the repository that published the pairs file", "the 'user item' file", "FILE"),
    "sequence": ("the repository that published the sequence file",
                 "the 'user item item ...' file", "FILE"),
}


def manual_steps(dataset, output_dir="dataset_atomic"):
    """The manual route for ``dataset``: where to get which file, and the convert command."""
    folder = os.path.join(output_dir, dataset)
    if dataset in ARCHIVES:
        archive = ARCHIVES[dataset]
        where, files, argument = archive.url, archive.filename, archive.filename
    elif dataset in MANUAL_SOURCES:
        where, files, argument = MANUAL_SOURCES[dataset]
    else:
        category = amazon_category(dataset)
        where = ("the Amazon 2014 review data page (http://jmcauley.ucsd.edu/data/amazon/, "
                 "per-category files)")
        files = f"reviews_{category}_5.json.gz (or ratings_{category}.csv)"
        argument = f"reviews_{category}_5.json.gz"
    return (f"Manual steps: (1) on a machine with network, get {files} from {where}; "
            f"(2) put the download in {folder}/ here; (3) run `python -m recbole_awrsr.data convert "
            f"{dataset} {os.path.join(folder, argument)} --output-dir {output_dir}`.")


def fetch(url, target, timeout=DEFAULT_TIMEOUT, opener=None):
    """Download ``url`` to ``target`` through a temporary file, so a broken transfer leaves nothing."""
    opener = opener or urllib.request.urlopen
    # connect first: without network nothing is created on disk
    with opener(url, timeout=timeout) as response, atomic_path(target) as temp:
        with open(temp, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)


def download(dataset, output_dir="dataset_atomic", sha256=None, timeout=DEFAULT_TIMEOUT,
             opener=None):
    """Fetch, verify and convert ``dataset``; returns the converter's writer.

    The archive is kept as ``<output_dir>/<dataset>/<filename>`` (so a re-run,
    e.g. with ``--sha256``, does not fetch again). Raises :class:`DownloadError`
    with the manual steps when there is no archive, no network, or a bad hash, and
    before touching any file when ``sha256`` is not 64 hexadecimal digits.
    """
    # before anything else: a mistyped hash would otherwise end in "mismatch, file deleted"
    if sha256 is not None and not re.fullmatch(r"[0-9A-Fa-f]{64}", sha256):
        raise DownloadError(f"--sha256 {sha256!r} is not a SHA-256: expected 64 hexadecimal digits "
                            f"(0-9, a-f), as printed by `sha256sum FILE`; nothing was fetched, "
                            f"checked or deleted")
    check_dataset(dataset)
    if dataset not in ARCHIVES:
        raise DownloadError(f"'{dataset}' has no official archive that can be fetched "
                            f"automatically. {manual_steps(dataset, output_dir)}")
    archive = ARCHIVES[dataset]
    target = os.path.join(output_dir, dataset, archive.filename)
    if not os.path.isfile(target):
        try:
            fetch(archive.url, target, timeout=timeout, opener=opener)
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            raise DownloadError(f"cannot download {archive.url} ({reason}). "
                                f"{manual_steps(dataset, output_dir)}") from None
    actual = file_digest(target)
    expected = (sha256 or archive.sha256 or "").lower()
    if not expected and archive.md5:
        actual_md5 = file_digest(target, "md5")
        if actual_md5 != archive.md5:
            os.remove(target)
            raise DownloadError(f"{archive.url} has MD5 {actual_md5}, expected {archive.md5} "
                                f"(the publisher's): the file was deleted. "
                                f"{manual_steps(dataset, output_dir)}")
        print(f"{target}: MD5 matches the publisher's; SHA-256 {actual}")
        return convert(dataset, target, output_dir)
    if not expected:
        raise DownloadError(
            f"downloaded {target}, but no SHA-256 is pinned for {archive.url} in this version, "
            f"so it is not converted unchecked. Its SHA-256 is {actual}: compare it with a copy "
            f"you trust, then run `python -m recbole_awrsr.data download {dataset} "
            f"--output-dir {output_dir} --sha256 {actual}` (the file is not fetched again).")
    if actual != expected:
        os.remove(target)
        raise DownloadError(f"{archive.url} has SHA-256 {actual}, expected {expected}: the file "
                            f"was deleted. {manual_steps(dataset, output_dir)}")
    return convert(dataset, target, output_dir)
