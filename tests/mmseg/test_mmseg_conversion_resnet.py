"""MMSegmentation checkpoints of the six ResNetV1c-101 Table 1 models (PSPNet, DeepLabV3+, UPerNet,
DMNet, CCNet, ANN) load into the project's models with the same logits (SeeThroughNet, CVPR 2022,
Sec. 4.4: "We used the models from MMSegmentation"; issue 22 items 6-7).

For each model at 19 classes (Cityscapes), and for PSPNet (dilated ResNet, output stride 8) and
UPerNet (undilated, four levels) also at the other class counts of Table 1's MMSegmentation datasets
(21 VOC, 60 Pascal Context; the classifier conversion is the same code for every head, so the other
heads' 21 and 60 cases would run no other code): MMSegmentation 1.2.2 builds the model
(``mmseg_reference.build_mmseg_model``) with random weights and random BN running statistics (a
train-mode pass sets them to real activation statistics, then they are perturbed: with default
statistics BN is near identity and a wrong layer order could pass). It is saved as an MMSegmentation
1.x checkpoint, converted by :func:`seethroughnet.conversion.mmseg.convert_mmseg_checkpoint` (once
by ``tools/convert_weights.py`` in a subprocess), and loaded as ``train_net.py --eval-only
MODEL.WEIGHTS`` loads it (``Trainer.build_model`` and the strict checkpointer) into the model of the
project's Cityscapes config (BN for one CPU process, ``NUM_CLASSES`` overridden). The project's
pre-argmax logits at input resolution (``CPPSegmentor``'s inference ``sem_seg``: the decode head's
logits up-sampled bilinearly, ``align_corners=False``) must equal MMSegmentation's ``encode_decode``
on the same image at two sizes: max abs difference < 1e-4, for logits whose spatial standard
deviation is about 1 (the random classifier is scaled so). A 0.x-layout checkpoint (mmcv meta,
CCNet's pre-mmcv-1.3 ``cca.gamma``) converts too.

Run time (2 shared CPU cores): see the report of issue 22 / docs/cpp_plugin.md.
"""

import functools
import os
import subprocess
import sys

import pytest
import torch

from seethroughnet.config import build_config
from seethroughnet.conversion.mmseg import MMSegConversionError, convert_mmseg_checkpoint
from seethroughnet.engine import Trainer
from seethroughnet.utils.safe_load import UnsafeFileError

from mmseg_reference import build_mmseg_model

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CFG_DIR = os.path.join(REPO, "projects/SeeThroughNet/configs/CPP-Plugin")
CONFIGS = {  # MODEL.DECODE_HEAD.NAME -> the project's Cityscapes config
    "psp": "pspnet_R101_cityscapes.yaml",
    "deeplabv3plus": "deeplabv3plus_R101_cityscapes.yaml",
    "upernet": "upernet_R101_cityscapes.yaml",
    "dmnet": "dmnet_R101_cityscapes.yaml",
    "ccnet": "ccnet_R101_cityscapes.yaml",
    "ann": "ann_R101_cityscapes.yaml",
}
CLASS_COUNTS = (19, 21, 60)  # Cityscapes, VOC, Pascal Context (60 classes, as MMSegmentation)
SIZES = ((64, 64), (57, 91))  # the second: odd sides, not multiples of the output stride
BN_OPTS = ["MODEL.RESNETS.NORM", "BN", "MODEL.DECODE_HEAD.NORM", "BN"]  # one CPU process
TOLERANCE = 1e-4


def _batch_norms(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def _first_image(h=64, w=64):
    """A random image, normalised as MMSegmentation's data preprocessor does."""
    image = torch.rand(3, h, w, generator=torch.Generator().manual_seed(1)) * 255
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    return ((image - mean) / std)[None]


@functools.lru_cache(maxsize=1)  # one model at a time (R101: about 250 MB)
def _random_mmseg_weights(head):
    """``(state_dict, classifier_std)``: random weights of MMSegmentation's ``head`` model
    (He-normal convs, random biases and BN affine parameters; BN running statistics from a
    train-mode pass on random images, then perturbed: means shifted, variances scaled) and the
    weight standard deviation that gives a random classifier logits of spatial standard deviation
    about 1 (from the spatial variance of the classifier's input on a random image)."""
    g = torch.Generator().manual_seed(sorted(CONFIGS).index(head))
    model = build_mmseg_model(head, 19)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / p[0].numel()) ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        norms = _batch_norms(model)
        for bn in norms:
            bn.weight.copy_(torch.rand(bn.weight.shape, generator=g) + 0.5)
            bn.momentum = 1.0  # running statistics := this batch's
        model.train()
        model.encode_decode(torch.randn(2, 3, 64, 64, generator=g), [dict(img_shape=(64, 64))] * 2)
        model.eval()
        for bn in norms:
            std = bn.running_var.sqrt()
            bn.running_mean.add_(torch.randn(std.shape, generator=g) * 0.1 * std)
            bn.running_var.mul_(torch.rand(std.shape, generator=g) * 0.5 + 0.75)
            bn.running_var.clamp_(min=0.5 * bn.running_var.mean().item())  # no near-0 variances
            bn.num_batches_tracked.fill_(80000)
        features = []
        hook = model.decode_head.conv_seg.register_forward_hook(
            lambda m, i, o: features.append(i[0])
        )
        model.encode_decode(_first_image(), [dict(img_shape=(64, 64))])
        hook.remove()
        spatial_var = float(features[0].var(dim=(2, 3)).sum())
    return {k: v.clone() for k, v in model.state_dict().items()}, spatial_var**-0.5


def random_mmseg_model(head, num_classes):
    """MMSegmentation's model with ``num_classes`` classes: the random weights of
    :func:`_random_mmseg_weights` and new random classifiers (logits of spatial standard deviation
    about 1)."""
    base, classifier_std = _random_mmseg_weights(head)
    model = build_mmseg_model(head, num_classes)
    g = torch.Generator().manual_seed(num_classes)
    state = model.state_dict()
    for k, v in state.items():
        if k.startswith("decode_head.conv_seg."):
            state[k] = torch.randn(v.shape, generator=g) * classifier_std
        elif ".conv_seg." in k:  # the auxiliary head's
            state[k] = torch.randn(v.shape, generator=g) * 0.01
        else:
            state[k] = base[k]
    model.load_state_dict(state)
    return model


def save_mmseg_1x(model, path):
    """As mmengine's ``Runner.save_checkpoint`` lays it out (meta + state_dict; the message hub
    and optimizer states are left out)."""
    import mmengine

    meta = {
        "mmengine_version": mmengine.__version__,
        "dataset_meta": {"classes": tuple(f"c{i}" for i in range(model.decode_head.num_classes))},
        "seed": 0,
        "epoch": 0,
        "iter": 80000,
    }
    torch.save({"meta": meta, "state_dict": model.state_dict()}, path)


def project_config_opts(num_classes):
    return BN_OPTS + ["MODEL.SEM_SEG_HEAD.NUM_CLASSES", str(num_classes)]


def load_like_eval_only(head, num_classes, weights):
    """``train_net.py --eval-only MODEL.WEIGHTS <weights>``: Trainer.build_model + its strict
    checkpointer's ``resume_or_load``."""
    cfg = build_config(
        os.path.join(CFG_DIR, CONFIGS[head]),
        project_config_opts(num_classes) + ["MODEL.WEIGHTS", str(weights), "MODEL.DEVICE", "cpu"],
    )
    model = Trainer.build_model(cfg)
    Trainer.build_checkpointer(cfg, model).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
    return model.eval()


def max_logit_difference(mmseg_model, project_model, h, w, seed):
    """Max |MMSegmentation encode_decode - project sem_seg| on one random 0-255 RGB image; the
    project normalises it itself (PIXEL_MEAN / PIXEL_STD), MMSegmentation gets it normalised."""
    image = torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed)) * 255
    x = (image - project_model.pixel_mean) / project_model.pixel_std
    with torch.no_grad():
        ref = mmseg_model.encode_decode(x[None], [dict(img_shape=(h, w))])[0]
        out = project_model([{"image": image, "height": h, "width": w}])[0]["sem_seg"]
    assert out.shape == ref.shape == (mmseg_model.decode_head.num_classes, h, w)
    assert float(ref.std(dim=(1, 2)).mean()) > 0.1  # logits vary over the image
    return float((out - ref).abs().max())


CASES = [
    (head, k) for head in CONFIGS for k in CLASS_COUNTS if k == 19 or head in ("psp", "upernet")
]


@pytest.mark.parametrize("head,num_classes", CASES, ids=[f"{h}-{k}" for h, k in CASES])
def test_converted_mmseg_checkpoint_gives_mmseg_logits(head, num_classes, tmp_path):
    torch.manual_seed(0)
    reference = random_mmseg_model(head, num_classes)
    source, converted = tmp_path / "mmseg.pth", tmp_path / "converted.pth"
    save_mmseg_1x(reference, source)
    config = os.path.join(CFG_DIR, CONFIGS[head])
    opts = project_config_opts(num_classes)
    if (head, num_classes) == ("psp", 19):  # the command line, once
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [os.path.join(REPO, "projects/SeeThroughNet"), REPO, env.get("PYTHONPATH", "")]
        )
        tool = os.path.join(REPO, "tools/convert_weights.py")
        cmd = [sys.executable, tool, "mmseg", "--config", config, str(source), str(converted)]
        r = subprocess.run(cmd + opts, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "MMSegmentation 1.x" in r.stdout
        assert "dropped (MMSegmentation's auxiliary FCN head" in r.stdout
        assert "auxiliary_head.conv_seg.weight" in r.stdout
        assert "newly initialised" in r.stdout and "aux_heads." in r.stdout
    else:
        report = convert_mmseg_checkpoint(source, config, converted, opts)
        assert report.layout == "MMSegmentation 1.x"
        assert report.dropped == sorted(
            k for k in reference.state_dict() if k.startswith("auxiliary_head.")
        )
        assert report.dropped and all(k.startswith("aux_heads.") for k in report.new)
        mmseg_keys = [k for k in reference.state_dict() if not k.startswith("auxiliary_head.")]
        assert len(report.loaded) == len(mmseg_keys)
    project = load_like_eval_only(head, num_classes, converted)
    for i, (h, w) in enumerate(SIZES):
        diff = max_logit_difference(reference, project, h, w, seed=10 + i)
        assert diff < TOLERANCE, f"{head}, {num_classes} classes, {h}x{w}: max |diff| {diff}"


def test_mmseg_0x_checkpoint_converts(tmp_path):
    """An MMSegmentation 0.x checkpoint (mmcv's ``save_checkpoint``: meta with ``mmcv_version``,
    ``CLASSES``, ``PALETTE``, ``config``; ``optimizer``) of CCNet, whose attention weight gamma
    (0 at initialisation) is set so that it matters."""
    reference = random_mmseg_model("ccnet", 19)
    with torch.no_grad():
        reference.decode_head.cca.gamma.scale.fill_(0.7)
    state = reference.state_dict()
    meta = {
        "mmcv_version": "1.7.0",
        "CLASSES": tuple(f"c{i}" for i in range(19)),
        "PALETTE": [[i, i, i] for i in range(19)],
        "config": "model = dict(type='EncoderDecoder')",
        "epoch": 0,
        "iter": 80000,
    }
    source, converted = tmp_path / "ccnet_0x.pth", tmp_path / "converted.pth"
    torch.save({"meta": meta, "state_dict": state, "optimizer": {"state": {}}}, source)
    report = convert_mmseg_checkpoint(
        source, os.path.join(CFG_DIR, CONFIGS["ccnet"]), converted, project_config_opts(19)
    )
    assert report.layout == "MMSegmentation 0.x"
    project = load_like_eval_only("ccnet", 19, converted)
    assert float(project.decode_head.cca.gamma.detach()) == pytest.approx(0.7)
    assert max_logit_difference(reference, project, 64, 64, seed=3) < TOLERANCE


def test_checkpoint_of_another_model_or_class_count_is_refused(tmp_path):
    """MMSegmentation's PSPNet checkpoint for the DeepLabV3+ config, and its 21-class checkpoint
    for a 19-class model: one error naming the first mismatching keys, the checkpoint and the
    config; nothing written."""
    source, out = tmp_path / "pspnet_voc.pth", tmp_path / "out.pth"
    save_mmseg_1x(build_mmseg_model("psp", 21), source)
    config = os.path.join(CFG_DIR, CONFIGS["deeplabv3plus"])
    with pytest.raises(MMSegConversionError) as e:
        convert_mmseg_checkpoint(source, config, out, project_config_opts(21))
    msg = str(e.value)
    assert str(source) in msg and config in msg and "NAME deeplabv3plus" in msg
    assert "decode_head.psp_modules.0.1.conv.weight" in msg  # a PSP key with no DeepLabV3+ key
    assert "decode_head.aspp.branches.0.0.weight" in msg  # a DeepLabV3+ key left empty
    config = os.path.join(CFG_DIR, CONFIGS["psp"])
    with pytest.raises(MMSegConversionError, match=r"2 shape mismatches: decode_head.conv_seg"):
        convert_mmseg_checkpoint(source, config, out, project_config_opts(19))
    assert sorted(os.listdir(tmp_path)) == ["pspnet_voc.pth"]


def test_runner_checkpoint_with_message_hub_needs_trust(tmp_path):
    """mmengine's ``Runner.save_checkpoint`` also stores the message hub (HistoryBuffer objects):
    refused by the safe loader, naming the opt-in; converted with it (``--trust-weights-file``)."""
    from mmengine.logging import MessageHub

    hub = MessageHub.get_instance("test_convert_weights")
    hub.update_scalar("train/loss", 1.0)
    model = build_mmseg_model("psp", 19)
    source, out = tmp_path / "iter_80000.pth", tmp_path / "out.pth"
    torch.save(
        {"meta": {"mmengine_version": "0.10.7"}, "state_dict": model.state_dict(),
         "message_hub": hub.state_dict()},
        source,
    )  # fmt: skip
    config = os.path.join(CFG_DIR, CONFIGS["psp"])
    with pytest.raises(UnsafeFileError, match="--trust-weights-file"):
        convert_mmseg_checkpoint(source, config, out, project_config_opts(19))
    assert not out.exists()
    report = convert_mmseg_checkpoint(source, config, out, project_config_opts(19), trusted=True)
    assert report.layout == "MMSegmentation 1.x" and out.exists()
