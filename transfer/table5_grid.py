"""The cells of Table 5 (paper: the HRNetV2 encoder of SeeThroughNet in three detectors): the
detectors, encoder initialisations and modes, a :class:`Cell` per run and its folder, and
:func:`gather` of the finished cells' ``result.json``. Shared by :mod:`transfer.table5` (running)
and :mod:`transfer.table5_report` (the table and the chart)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from seethroughnet.experiments import grid as grid_runner

DETECTORS: Dict[str, Tuple[str, str]] = {
    "mask_rcnn": ("Mask R-CNN", "mask_rcnn_hrnetv2_w48.yaml"),
    "faster_rcnn": ("Faster R-CNN", "faster_rcnn_hrnetv2_w48.yaml"),
    "fcos": ("FCOS", "fcos_hrnetv2_w48.yaml"),
}


#: --neck -> MODEL.BACKBONE.NAME
NECKS = {"hrfpn": "build_hrnetv2_hrfpn_backbone", "fpn": "build_hrnetv2_fpn_backbone"}


#: init key -> (label, MODEL.TRANSFER.ENCODER_INIT, CLI option holding the weights)
INITS: Dict[str, Tuple[str, str, str]] = {
    "imagenet": ("ImageNet", "imagenet", "--imagenet-weights"),
    "stn_wo_cpp": ("SeeThroughNet w/o CPP", "seethroughnet", "--stn-weights"),
    "stn_cpp": ("SeeThroughNet w/ CPP", "seethroughnet", "--stn-cpp-weights"),
}


MODES = ("finetune", "frozen")


METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


METRIC_LABELS = {
    "AP": "AP",
    "AP50": "AP50",
    "AP75": "AP75",
    "APs": "AP_s",
    "APm": "AP_m",
    "APl": "AP_l",
}


@dataclass(frozen=True)
class Cell:
    detector: str
    init: str
    mode: str
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{self.init}_{self.mode}" + (f"_seed{self.seed}" if self.seed else "")

    @property
    def key(self) -> str:
        return f"{self.detector}/{self.name}"

    @property
    def group(self) -> Tuple[str, str, str]:
        return self.detector, self.init, self.mode

    def dir(self, out_dir: str) -> str:
        return os.path.join(out_dir, self.detector, self.name)


def plan(
    detectors: Iterable[str] = DETECTORS,
    inits: Iterable[str] = INITS,
    modes: Iterable[str] = MODES,
    seeds: int = 1,
) -> List[Cell]:
    bad = (
        [d for d in detectors if d not in DETECTORS]
        + [i for i in inits if i not in INITS]
        + [m for m in modes if m not in MODES]
    )
    if bad:
        raise ValueError(
            f"unknown grid entries {bad}; detectors {list(DETECTORS)}, inits {list(INITS)}, modes "
            f"{list(MODES)}"
        )
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    return [Cell(d, i, m, k) for d in detectors for i in inits for m in modes for k in range(seeds)]


# ----------------------------------------------------------------------------------------- running
def read_cell(out_dir: str, cell: Cell) -> Optional[dict]:
    """The cell's ``result.json`` (or an earlier runner's ``cell.json``); ``None`` if absent or
    unreadable (the cell then runs again)."""
    return grid_runner.read_result(cell.dir(out_dir))


# --------------------------------------------------------------------------------------- rendering
def gather(out_dir: str, cells: Optional[Sequence[Cell]] = None) -> Dict[Cell, dict]:
    """The records of ``cells`` found on disk; by default the whole grid with every seed that
    has a folder (``<init>_<mode>_seed<k>``)."""
    if cells is None:
        cells = list(plan())
        pat = re.compile(r"^(.+)_seed(\d+)$")
        for det in DETECTORS:
            d = os.path.join(out_dir, det)
            for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                m = pat.match(name)
                if m:
                    for init in INITS:
                        for mode in MODES:
                            if m.group(1) == f"{init}_{mode}" and int(m.group(2)) > 0:
                                cells.append(Cell(det, init, mode, int(m.group(2))))
    return {c: r for c in cells if (r := read_cell(out_dir, c)) is not None}
