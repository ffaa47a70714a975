"""The known split sizes of every dataset the ``prepare_*.py`` scripts and ``check_datasets.py``
write or check (the one table of them), the publishers' archive checksums, and the count check
that ends every preparation (not a script itself).

:func:`check_split_sizes` compares the image count of each split written with the known size:
a table ``split / written / expected / status`` on stdout, one :class:`SplitSizeWarning` per
mismatch naming both numbers, or, with ``strict``, a :class:`SplitSizeError` (a ``ValueError``,
so the scripts exit 2 with ``error: ...``) naming them all.
"""

from __future__ import annotations

import sys
import warnings
from typing import Dict, List, Mapping, Optional, Sequence, TextIO, Tuple

__all__ = [
    "ARCHIVE_MD5",
    "KNOWN_SIZES",
    "SplitSizeError",
    "SplitSizeWarning",
    "check_split_sizes",
    "expected_sizes",
    "format_size_table",
    "refuse_mismatch",
    "size_problems",
]

#: ``{dataset: {split: {source: images}}}``: the image count of each split in the full release.
#: A split with several sources (Pascal Context) matches any of them unless the preparation says
#: which one it used. Sources (datasets/README.md cites them per dataset):
#:
#: * ``voc2012``: VOC 2012 ``ImageSets/Segmentation/{train,val}.txt``; ``train_aug`` is the SBD
#:   augmented set of DeepLab and MMSegmentation (``tools/dataset_converters/voc_aug.py``,
#:   ``AUG_LEN = 10582``).
#: * ``pascal_context``: MMSegmentation's lists from the PASCAL in Detail API file
#:   ``trainval_merged.json``, or VOC 2010's ``ImageSets/Main/{train,val}.txt``.
#: * ``nyuv2``: ``splits.mat`` of the NYU Depth v2 release (Silberman et al. 2012), the 40-class
#:   split of Gupta et al. 2013.
#: * ``mapillary_vistas``: Mapillary Vistas (Neuhold et al. 2017) v1.2 research edition.
#: * ``cityscapes``: ``gtFine`` of Cityscapes (Cordts et al. 2016).
KNOWN_SIZES: Dict[str, Dict[str, Dict[str, int]]] = {
    "voc2012": {
        "train": {"VOC 2012": 1464},
        "val": {"VOC 2012": 1449},
        "train_aug": {"VOC 2012 + SBD": 10582},
    },
    "pascal_context": {
        "train": {"Detail API": 4996, "VOC 2010 Main": 4998},
        "val": {"Detail API": 5104, "VOC 2010 Main": 5105},
    },
    "nyuv2": {"train": {"splits.mat": 795}, "test": {"splits.mat": 654}},
    "mapillary_vistas": {
        "training": {"v1.2": 18000},
        "validation": {"v1.2": 2000},
        "testing": {"v1.2": 5000},
    },
    "cityscapes": {
        "train": {"gtFine": 2975},
        "val": {"gtFine": 500},
        "test": {"gtFine": 1525},
    },
}

#: ``{archive file name: md5}`` as torchvision records them (pytorch/vision,
#: ``torchvision/datasets/voc.py`` ``DATASET_YEAR_DICT`` and ``torchvision/datasets/sbd.py``
#: ``SBDataset.md5``); the other archives' publishers give none.
ARCHIVE_MD5: Dict[str, str] = {
    "VOCtrainval_11-May-2012.tar": "6cd6e144f989b92b3379bac3b3de84fd",
    "VOCtrainval_03-May-2010.tar": "da459979d0c395079b5c75ee67908abb",
    "benchmark.tgz": "82b4d87ceb2ed10f6038a1cba92111cb",
}


class SplitSizeWarning(UserWarning):
    """A split holds another number of images than the full release's."""


class SplitSizeError(ValueError):
    """A split size mismatch under ``--strict``."""


def expected_sizes(dataset: str, split: str, source: Optional[str] = None) -> Dict[str, int]:
    """``{source: images}`` expected for ``split`` of ``dataset``: the one of ``source`` when it
    is given (and known), else every known one."""
    known = KNOWN_SIZES[dataset][split]
    if source is not None and source in known:
        return {source: known[source]}
    return dict(known)


def _expected_text(expected: Mapping[str, int]) -> str:
    return " or ".join(f"{n:,} ({src})" for src, n in expected.items())


def format_size_table(rows: Sequence[Tuple[str, object, Mapping[str, int], str]]) -> str:
    """The table of ``(split, written, {source: expected}, status)`` rows, one line each."""
    lines = [f"  {'split':<12} {'written':>9}  {'expected':<34} status"]
    for split, written, expected, status in rows:
        shown = written if isinstance(written, str) else f"{written:,}"
        lines.append(f"  {split:<12} {shown:>9}  {_expected_text(expected):<34} {status}")
    return "\n".join(lines)


def size_problems(
    dataset: str, counts: Mapping[str, int], source: Optional[str] = None
) -> List[str]:
    """One message per split of ``counts`` (``{split: images}``) whose count is not a known size
    of :data:`KNOWN_SIZES` ``[dataset]`` (of ``source`` when given), naming both numbers."""
    problems = []
    for split, n in counts.items():
        expected = expected_sizes(dataset, split, source)
        if n not in expected.values():
            problems.append(
                f"{dataset} {split}: {n:,} images written, {_expected_text(expected)} expected "
                "in the full release"
            )
    return problems


def refuse_mismatch(dataset: str, counts: Mapping[str, int], source: Optional[str] = None) -> None:
    """:class:`SplitSizeError` naming every mismatch of :func:`size_problems` (``--strict``)."""
    problems = size_problems(dataset, counts, source)
    if problems:
        raise SplitSizeError(
            "; ".join(problems) + " (--strict: this run wrote no pairs file; without --strict "
            "this is a warning. Check that the release is complete and unpacked as "
            "datasets/README.md says)"
        )


def check_split_sizes(
    dataset: str,
    counts: Mapping[str, int],
    source: Optional[str] = None,
    strict: bool = False,
    out: Optional[TextIO] = None,
) -> List[str]:
    """Print the table of ``counts`` (``{split: images written}``) against
    :data:`KNOWN_SIZES` ``[dataset]`` (of ``source`` when given) to ``out`` (stdout) and return
    the mismatch messages (:func:`size_problems`). Each mismatch is a :class:`SplitSizeWarning`;
    with ``strict`` they are one :class:`SplitSizeError` instead, raised after the table."""
    out = sys.stdout if out is None else out
    rows = []
    for split, n in counts.items():
        expected = expected_sizes(dataset, split, source)
        rows.append((split, n, expected, "ok" if n in expected.values() else "MISMATCH"))
    where = f" ({source})" if source else ""
    print(f"{dataset}{where}: images per split, written vs the full release", file=out)
    print(format_size_table(rows), file=out)
    if strict:
        refuse_mismatch(dataset, counts, source)
    problems = size_problems(dataset, counts, source)
    for message in problems:
        warnings.warn(message, SplitSizeWarning, stacklevel=2)
    return problems
