"""A procedural street-scene dataset in the exact Cityscapes on-disk format.

The embedded default dataset of this project: small, deterministic, CPU-friendly, and readable
by every tool that reads Cityscapes (cityscapesscripts, detectron2's ``cityscapes_*`` loaders)::

    <root>/leftImg8bit/{train,val,test}/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png
    <root>/gtFine/{split}/<city>/<city>_<seq>_<frame>_gtFine_polygons.json
    <root>/gtFine/{split}/<city>/<city>_<seq>_<frame>_gtFine_{kind}.png
        (kind: labelIds, instanceIds, labelTrainIds, color)
    <root>/synthetic_cityscapes.json          (manifest, written last)

How a sample is made
--------------------
1. A pinhole camera over a flat ground plane (random focal length, camera height, horizon row
   and vanishing point) looks down a street: road with lanes (optionally tram rails), sidewalks,
   lots of buildings / parks / walls / fences / intersections on both sides, an end-of-street
   backdrop, street lights, sign and traffic-light poles, trees, static clutter, and the eight
   Cityscapes thing classes (person, rider, car, truck, bus, train, motorcycle, bicycle) placed in
   3-D with collision checks, so that far ones are small and near ones occlude far ones.
   Instance rates mimic Cityscapes' imbalance (cars and persons common; truck, bus, train,
   motorcycle and rider rare).  Some void regions are added as in Cityscapes: the ego vehicle's
   bonnet, rectification border, out-of-roi, static clutter, license plates (label id -1),
   rail track and ``cargroup``/``persongroup`` crowd regions.
2. The scene is an ordered list of polygons (background first, nearest last) with integer
   coordinates clipped to the image: exactly a Cityscapes ``*_gtFine_polygons.json``.
   Thing instances that would end up (almost) fully occluded are removed from the list.
3. labelIds / labelTrainIds / color / instanceIds are rasterised *from that JSON* with
   cityscapesscripts' own ``createLabelImage`` / ``createInstanceImage``, so JSON and PNGs agree by
   construction (instance ids: ``labelId * 1000 + k`` for things, ``labelId`` for stuff and groups).
4. The RGB image is painted polygon by polygon in the same order with the same rasteriser, each
   class with its own texture statistics (facade windows in perspective, asphalt with lane
   markings, paving, foliage, see-through fences and bicycles, box-shaped vehicles with shaded
   faces, windows, wheels and lights, ...), then lit (sun direction, cast shadows, exposure,
   white balance, vignetting), slightly blurred and given sensor noise.

Every image is seeded from ``(seed, split, index)`` alone, so the same seed gives byte-identical
files and changing the number of images of a split never changes the other images.

Test split: like the real Cityscapes test split (whose public ``gtFine`` is a dummy), the test
split's images are full scenes but its ``gtFine`` holds only the void regions (ego vehicle,
rectification border, out of roi); everything else is ``unlabeled`` (id 0, trainId 255).
Pass ``test_gt="full"`` to get real labels for the test split too.

The package imports neither detectron2 nor torch.  Its modules, in the order of the pipeline:

* :mod:`.common` -- constants, sample names and paths, the per-image random generator;
* :mod:`.geometry` -- the camera, polygon clipping, two-wheeler and rider outlines;
* :mod:`.layout`, :mod:`.furniture`, :mod:`.things` -- the scene layout (street, lots, street
  furniture, thing instances, void regions), put together in :mod:`.scene`;
* :mod:`.painters` -- the per-kind painters of the RGB image, used by :mod:`.render`;
* :mod:`.writer` -- files, manifest and :func:`generate_synthetic_cityscapes`;
* :mod:`.statistics` -- class statistics and the preview grid.
"""

from .common import (
    CITIES,
    DEFAULT_NUM_IMAGES,
    GENERATOR_NAME,
    GENERATOR_VERSION,
    MANIFEST_NAME,
    SPLITS,
    THING_CLASSES,
    SyntheticDatasetError,
    base_label,
    sample_name,
    sample_paths,
)
from .render import render_sample
from .scene import scene_instance_counts
from .statistics import compute_statistics, format_statistics, write_preview
from .writer import generate_synthetic_cityscapes, read_manifest

__all__ = [
    "GENERATOR_NAME",
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "SPLITS",
    "DEFAULT_NUM_IMAGES",
    "CITIES",
    "THING_CLASSES",
    "SyntheticDatasetError",
    "generate_synthetic_cityscapes",
    "render_sample",
    "scene_instance_counts",
    "sample_name",
    "sample_paths",
    "base_label",
    "read_manifest",
    "compute_statistics",
    "format_statistics",
    "write_preview",
]
