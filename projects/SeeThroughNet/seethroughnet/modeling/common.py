"""Input and loss plumbing shared by the project's detectron2 meta-architectures."""

import torch
from detectron2.modeling.postprocessing import sem_seg_postprocess
from detectron2.structures import ImageList

__all__ = ["normalized_images", "padded_labels", "semantic_outputs", "check_finite_losses"]


def normalized_images(batched_inputs, pixel_mean, pixel_std, size_divisibility) -> ImageList:
    """``(image - mean) / std`` for each input, zero-padded (i.e. to the mean) into one batch
    whose sides are multiples of ``size_divisibility``."""
    device = pixel_mean.device
    images = [(x["image"].to(device).float() - pixel_mean) / pixel_std for x in batched_inputs]
    return ImageList.from_tensors(images, size_divisibility, pad_value=0.0)


def padded_labels(batched_inputs, size_divisibility, ignore_value, device) -> torch.Tensor:
    """The inputs' ``sem_seg`` maps padded with ``ignore_value`` like :func:`normalized_images`."""
    labels = [x["sem_seg"].to(device) for x in batched_inputs]
    return ImageList.from_tensors(labels, size_divisibility, pad_value=ignore_value).tensor


def semantic_outputs(logits, batched_inputs, image_sizes):
    """detectron2's inference output ``[{"sem_seg": (K, H, W)}]``: each padded-batch logit map
    cropped to its image's size and resized to the input's ``height`` x ``width``."""
    results = []
    for r, x, size in zip(logits, batched_inputs, image_sizes):
        h, w = x.get("height", size[0]), x.get("width", size[1])
        results.append({"sem_seg": sem_seg_postprocess(r, size, h, w)})
    return results


def check_finite_losses(losses) -> None:
    """Raise ``FloatingPointError`` naming every non-finite loss term and the iteration."""
    bad = {k: float(v) for k, v in losses.items() if not torch.isfinite(v).all()}
    if not bad:
        return
    try:
        from detectron2.utils.events import get_event_storage

        where = f"at iteration {get_event_storage().iter}"
    except (AssertionError, ImportError):
        where = "outside a training loop"
    raise FloatingPointError(
        f"non-finite loss {where}: "
        + ", ".join(f"{k} = {v}" for k, v in bad.items())
        + ". Training stopped; lower SOLVER.BASE_LR, check the inputs, or resume from the last "
        "checkpoint."
    )
