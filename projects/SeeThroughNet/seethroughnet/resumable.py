"""The resumable training data stream and the generators' state, for exact resume
(:class:`seethroughnet.engine.Trainer` saves and restores both with its checkpoint).

* the index stream is TrainingSampler's (``randperm`` epochs from a seed drawn by
  ``comm.shared_random_seed()``, which follows ``SEED``; the seed is saved), every
  ``world_size``-th element to a rank; consecutive elements form a batch, so the position is
  "samples consumed". An ``order`` (e.g. the class-uniform order, ``data/class_uniform.py``)
  replaces the shuffled epochs by any stream that starts at an element without generating the
  ones before it;
* with ``DATALOADER.NUM_WORKERS 0`` the augmentations draw from the global generators in the
  main process, as detectron2's loader does (a seeded run reproduces its numbers exactly), and
  those generators are saved with the checkpoint; with workers, each sample's augmentation draws
  from generators seeded by (seed, rank, position), which a worker restart cannot disturb.

The whole state of the stream is two integers (seed, position), valid for any number of
workers. torchdata's ``StatefulDataLoader`` is not used: it would be a new dependency that adds
nothing here, since it restores an ``IterableDataset`` only through that dataset's own
``state_dict`` (which would be these two integers), and its own state (per-worker iterators,
samplers, RNG snapshots) is tied to ``num_workers``, which a resumed run may change.

Everything saved is made of tensors, numbers, strings, lists and dicts, so checkpoints load
with ``torch.load(weights_only=True)``.
"""

import contextlib
import itertools
import logging
import random

import numpy as np
import torch
from detectron2.data.common import DatasetFromList
from detectron2.utils import comm

__all__ = [
    "ResumableTrainLoader",
    "build_resumable_train_loader",
    "get_rng_state",
    "preserved_rng",
    "sample_seed",
    "set_rng_state",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# random number generators, as weights_only-loadable values
def get_rng_state() -> dict:
    """The states of Python's, NumPy's and torch's global generators (CUDA too, if initialised)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {
            "version": int(version),
            "state": list(internal),
            "gauss_next": [] if gauss is None else [gauss],
        },
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    p = state["python"]
    random.setstate(
        (p["version"], tuple(p["state"]), p["gauss_next"][0] if p["gauss_next"] else None)
    )
    n = state["numpy"]
    keys = torch.as_tensor(n["keys"]).numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(torch.as_tensor(state["torch"]).to(torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        cuda = [torch.as_tensor(s).to(torch.uint8) for s in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def preserved_rng():
    """Run a block without changing the global generators' states as seen afterwards."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


def sample_seed(seed: int, rank: int, position: int) -> int:
    return int(np.random.SeedSequence([seed, rank, position]).generate_state(1)[0])


# ---------------------------------------------------------------------------------------------
# the data stream
def _infinite_indices(size: int, seed: int, shuffle: bool):
    g = torch.Generator()
    g.manual_seed(seed)
    while True:
        if shuffle:
            yield from torch.randperm(size, generator=g).tolist()
        else:
            yield from range(size)


class _BatchStream(torch.utils.data.IterableDataset):
    """Batches of this rank's stream from ``start`` on; in a DataLoader worker ``w`` of ``n``
    only batches ``w, w + n, ...``, so that the loader's round-robin gives them in order."""

    def __init__(self, loader):
        """The stream of ``loader`` (a :class:`ResumableTrainLoader`) from its position on."""
        self.dataset, self.mapper, self.order = loader.dataset, loader.mapper, loader.order
        self.batch_size, self.seed, self.start = loader.batch_size, loader.seed, loader.position
        self.rank, self.world_size, self.shuffle = loader.rank, loader.world_size, loader.shuffle
        self.per_sample_seeds = loader.num_workers > 0

    def _sample(self, element):
        """The dataset dict of a stream element: an image index, or (with an ``order``) a pair
        ``(index, centroid)`` whose centroid, if any, goes to the mapper as
        ``class_uniform_centroid`` ((class_id, x, y), seethroughnet/data/class_uniform.py)."""
        if isinstance(element, int):
            return self.dataset[element]
        index, centroid = element
        d = self.dataset[index]
        if centroid is not None:
            d = {**d, "class_uniform_centroid": tuple(centroid)}
        return d

    def _map(self, position, element):
        if not self.per_sample_seeds:
            return self.mapper(self._sample(element))
        with preserved_rng():
            s = sample_seed(self.seed, self.rank, position)
            random.seed(s)
            np.random.seed(s)
            torch.manual_seed(s)
            return self.mapper(self._sample(element))

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        first = self.rank + self.start * self.world_size
        if self.order is None:
            stream = itertools.islice(
                _infinite_indices(len(self.dataset), self.seed, self.shuffle),
                first,
                None,
                self.world_size,
            )
        else:  # the order starts at any element without generating the ones before it
            stream = itertools.islice(
                self.order.elements(self.seed, first), 0, None, self.world_size
            )
        position = self.start
        for j in itertools.count():
            chunk = list(itertools.islice(stream, self.batch_size))
            if j % workers == worker:
                batch = [self._map(position + i, idx) for i, idx in enumerate(chunk)]
                yield [b for b in batch if b is not None]
            position += self.batch_size


def _as_is(batch):
    return batch


class ResumableTrainLoader:
    """An infinite iterable of training batches (lists of mapped dicts) whose position and seed
    are saved by :meth:`state_dict` and restored by :meth:`load_state_dict` before the first
    batch is drawn. ``last_files`` holds the ``file_name`` of the last batch's images."""

    def __init__(
        self, dataset_dicts, mapper, batch_size, *, seed, num_workers=0, shuffle=True, order=None
    ):
        self.dataset = DatasetFromList(dataset_dicts, copy=False, serialize=True)
        # None: detectron2's TrainingSampler stream; else an object with elements(seed, start)
        # and describe() (seethroughnet.data.class_uniform.ClassUniformOrder)
        self.order = order
        self.mapper, self.batch_size, self.num_workers = mapper, batch_size, num_workers
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank, self.world_size = comm.get_rank(), comm.get_world_size()
        self.position = 0  # samples of this rank's stream in the batches handed out so far
        self.last_files = []
        self._started = False

    def state_dict(self):
        return {
            "seed": self.seed,
            "position": self.position,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "order": self._order_name(),
        }

    def _order_name(self):
        return "shuffled" if self.order is None else self.order.describe()

    def load_state_dict(self, state):
        if self._started:
            raise RuntimeError(
                "the training data stream has started: load its state before the first batch"
            )
        if (
            state.get("batch_size", self.batch_size) != self.batch_size
            or state.get("world_size", self.world_size) != self.world_size
        ):
            logger.warning(
                f"the checkpoint's data stream had {state.get('batch_size')} images per batch on "
                f"{state.get('world_size')} processes, this run has {self.batch_size} on "
                f"{self.world_size}: "
                "the data order continues, but not as an uninterrupted run's would"
            )
        if state.get("order", "shuffled") != self._order_name():
            logger.warning(
                f"the checkpoint's data stream was {state.get('order', 'shuffled')!r}, this run's "
                f"is {self._order_name()!r} (DATALOADER.CLASS_UNIFORM or the dataset changed): "
                "the position is kept, but the samples differ from an uninterrupted run's"
            )
        self.seed = int(state["seed"])
        self.position = int(state["position"])

    def __iter__(self):
        self._started = True
        stream = _BatchStream(self)
        if self.num_workers == 0 and self.position == 0:
            # the one draw from the global generator that detectron2's loader (a torch DataLoader)
            # makes when its iterator starts: seeded runs keep their numbers
            torch.empty((), dtype=torch.int64).random_()
        if self.num_workers > 0:
            stream = torch.utils.data.DataLoader(
                stream,
                batch_size=None,
                num_workers=self.num_workers,
                collate_fn=_as_is,
                generator=torch.Generator().manual_seed(self.seed),  # not the global generator
            )
        for batch in stream:
            self.position += self.batch_size
            self.last_files = [d.get("file_name") for d in batch if isinstance(d, dict)]
            yield batch


def _class_uniform_enabled(cfg) -> bool:
    node = cfg.DATALOADER.get("CLASS_UNIFORM", None)  # absent in plain detectron2 configs
    return bool(node is not None and node.ENABLED)


def build_resumable_train_loader(cfg, mapper):
    """:class:`ResumableTrainLoader` over ``cfg.DATASETS.TRAIN`` (detectron2's dataset filtering),
    or detectron2's own loader, with a warning, for samplers other than ``TrainingSampler``."""
    from detectron2.data import build_detection_train_loader, get_detection_dataset_dicts

    class_uniform = _class_uniform_enabled(cfg)
    if cfg.DATALOADER.SAMPLER_TRAIN != "TrainingSampler" and class_uniform:
        raise ValueError(
            f"DATALOADER.CLASS_UNIFORM.ENABLED replaces the sampler: set DATALOADER.SAMPLER_TRAIN "
            f"'TrainingSampler' (got {cfg.DATALOADER.SAMPLER_TRAIN!r}) or disable it"
        )
    if cfg.DATALOADER.SAMPLER_TRAIN != "TrainingSampler":
        logger.warning(
            f"DATALOADER.SAMPLER_TRAIN {cfg.DATALOADER.SAMPLER_TRAIN}: the data stream's "
            "position is "
            "not checkpointed, a resumed run sees other images than an uninterrupted one"
        )
        return build_detection_train_loader(cfg, mapper=mapper)
    world = comm.get_world_size()
    total = cfg.SOLVER.IMS_PER_BATCH
    if total % world:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH {total} must be divisible by the number of processes ({world})"
        )
    dataset = get_detection_dataset_dicts(  # the arguments build_detection_train_loader passes
        cfg.DATASETS.TRAIN,
        filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
        min_keypoints=(
            cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if cfg.MODEL.KEYPOINT_ON else 0
        ),
        proposal_files=cfg.DATASETS.PROPOSAL_FILES_TRAIN if cfg.MODEL.LOAD_PROPOSALS else None,
    )
    # the seed detectron2 v0.6's TrainingSampler draws: one draw from the (SEED-seeded) global
    # NumPy generator, rank 0's shared by all ranks
    seed = comm.shared_random_seed()
    order = None
    if class_uniform:
        from .data.class_uniform import build_class_uniform_order

        order = build_class_uniform_order(cfg, dataset)
    return ResumableTrainLoader(
        dataset,
        mapper,
        total // world,
        seed=seed,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        order=order,
    )
