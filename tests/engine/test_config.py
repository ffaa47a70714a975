"""Config keys of the objective (MODEL.SEE_THROUGH.RMI.*, CPP_ON, PER_SCALE_LOSS), renamed keys,
and the random-initialisation guard (MODEL.REQUIRES_PRETRAINED / MODEL.ALLOW_RANDOM_INIT)."""

import os

import pytest

pytest.importorskip("detectron2")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPO, "projects/SeeThroughNet/configs")
TINY_CONFIG = os.path.join(
    REPO, "tests/configs/seethroughnet_tiny.yaml"
)  # the tests' tiny SeeThroughNet
W48 = os.path.join(CONFIGS, "Cityscapes/seethroughnet_W48_cityscapes_fine.yaml")


def _net(*opts):
    from seethroughnet.config import build_config
    from seethroughnet.modeling.meta_arch.seethroughnet import build_seethroughnet_from_cfg

    return build_seethroughnet_from_cfg(build_config(TINY_CONFIG, list(opts)))


def test_default_objective_is_the_nvidia_rmi_with_cpp_on_the_coarse_maps():
    net = _net()
    rmi = net.rmi_loss
    assert (rmi.radius, rmi.pool, rmi.pool_stride, rmi.lambda_weight, rmi.class_reduction) == (
        3,
        "avg",
        4,
        0.5,
        "sum",
    )
    opts = net.loss_options
    assert (
        opts.rmi_weight == 1.0
        and opts.cpp_on == "coarse"
        and opts.per_scale_loss == "ce"
        and opts.gamma == 0.05
    )


def test_every_objective_key_reaches_the_model():
    net = _net(
        "MODEL.SEE_THROUGH.RMI.WEIGHT",
        "0.7",
        "MODEL.SEE_THROUGH.RMI.LAMBDA",
        "0.25",
        "MODEL.SEE_THROUGH.RMI.RADIUS",
        "2",
        "MODEL.SEE_THROUGH.RMI.POOL",
        "max",
        "MODEL.SEE_THROUGH.RMI.POOL_STRIDE",
        "3",
        "MODEL.SEE_THROUGH.RMI.CLASS_REDUCTION",
        "mean",
        "MODEL.SEE_THROUGH.CPP_ON",
        "aggregated",
        "MODEL.SEE_THROUGH.PER_SCALE_LOSS",
        "bce",
    )
    rmi = net.rmi_loss
    assert (rmi.radius, rmi.pool, rmi.pool_stride, rmi.lambda_weight, rmi.class_reduction) == (
        2,
        "max",
        3,
        0.25,
        "mean",
    )
    opts = net.loss_options
    assert opts.rmi_weight == 0.7 and opts.cpp_on == "aggregated" and opts.per_scale_loss == "bce"


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("MODEL.SEE_THROUGH.RMI.POOL", "none", "RMI pool must be one of"),
        ("MODEL.SEE_THROUGH.RMI.CLASS_REDUCTION", "max", "class_reduction must be one of"),
        ("MODEL.SEE_THROUGH.CPP_ON", "both", "cpp_on must be one of"),
        ("MODEL.SEE_THROUGH.PER_SCALE_LOSS", "focal", "per_scale_loss must be one of"),
    ],
)
def test_bad_objective_values_list_the_choices(key, value, match):
    with pytest.raises(ValueError, match=match):
        _net(key, value)


def test_old_rmi_keys_name_their_new_names(tmp_path):
    from seethroughnet.config import build_config

    with pytest.raises(
        KeyError, match=r"MODEL.SEE_THROUGH.RMI_LAMBDA.*MODEL.SEE_THROUGH.RMI.LAMBDA"
    ):
        build_config(TINY_CONFIG, ["MODEL.SEE_THROUGH.RMI_LAMBDA", "0.5"])
    old = tmp_path / "old.yaml"
    old.write_text(f'_BASE_: "{TINY_CONFIG}"\nMODEL:\n  SEE_THROUGH:\n    RMI_WEIGHT: 1.0\n')
    with pytest.raises(KeyError, match=r"old.yaml.*MODEL.SEE_THROUGH.RMI.WEIGHT"):
        build_config(str(old))


def test_guard_paths():
    from seethroughnet.config import build_config
    from seethroughnet.engine import RandomInitError, check_pretrained_weights

    for path in (
        W48,
        os.path.join(CONFIGS, "Cityscapes/ablation/seethroughnet_W48_cpp-off_msa-on.yaml"),
        os.path.join(CONFIGS, "CPP-Plugin/ocrnet_HRW48_cityscapes.yaml"),
    ):
        with pytest.raises(
            RandomInitError,
            match=r"set MODEL.HRNET.CHECKPOINT .* or add `MODEL.ALLOW_RANDOM_INIT True`",
        ):
            check_pretrained_weights(build_config(path))
    psp = os.path.join(CONFIGS, "CPP-Plugin/pspnet_R101_cityscapes.yaml")
    with pytest.raises(
        RandomInitError,
        match=r"set MODEL.RESNETS.IMAGENET_CHECKPOINT \(a local ImageNet ResNet file.*"
        r"resnet101_v1c.*\) or MODEL.WEIGHTS, or add `MODEL.ALLOW_RANDOM_INIT True`",
    ):
        check_pretrained_weights(build_config(psp))
    # the Table 1 ResNet configs: a local ImageNet ResNet file satisfies it (as MODEL.WEIGHTS does)
    # ...
    for opts in (
        ["MODEL.RESNETS.IMAGENET_CHECKPOINT", "/data/resnet101_v1c.pth"],
        ["MODEL.WEIGHTS", "/data/m.pth"],
    ):
        check_pretrained_weights(build_config(psp, opts))
    # ... but not for an HRNet config, whose encoder never reads it
    with pytest.raises(RandomInitError, match=r"MODEL.HRNET.CHECKPOINT"):
        check_pretrained_weights(
            build_config(
                os.path.join(CONFIGS, "CPP-Plugin/ocrnet_HRW48_cityscapes.yaml"),
                ["MODEL.RESNETS.IMAGENET_CHECKPOINT", "/data/resnet101_v1c.pth"],
            )
        )
    # each way of satisfying it
    for opts in (
        ["MODEL.ALLOW_RANDOM_INIT", "True"],
        ["MODEL.HRNET.CHECKPOINT", "/data/hrnetv2_w48.pth"],
        ["MODEL.WEIGHTS", "/data/model_final.pth"],
    ):
        check_pretrained_weights(build_config(W48, opts))
    # the CPU demo and the CamVid CPU study opt out in their files
    check_pretrained_weights(build_config(TINY_CONFIG))
    check_pretrained_weights(
        build_config(os.path.join(CONFIGS, "CPP-Plugin/CamVid-CPU/pspnet_R18_camvid.yaml"))
    )


LAZY_CONFIG = """from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler

train = dict(output_dir="./output", max_iter=90000)
"""


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("lazy.py", LAZY_CONFIG, "LazyConfig"),
        (
            "lazy.yaml",  # LazyConfig.save writes YAML
            "model:\n  _target_: detectron2.modeling.GeneralizedRCNN\ntrain:\n  max_iter: 10\n",
            "LazyConfig",
        ),
        ("empty.yaml", "", "is empty"),
        ("comments_only.yaml", "# nothing here\n", "is empty"),
        ("list.yaml", "- MODEL\n- SOLVER\n", "a list"),
        ("scalar.yaml", "seethroughnet\n", "a str"),
    ],
)
def test_a_config_that_is_not_a_yaml_mapping_is_refused_naming_the_file(
    tmp_path, name, text, expected
):
    """Issue #25: a LazyConfig ``.py``, an empty file or a YAML list ended in a bare
    AttributeError / TypeError without the file's name."""
    from seethroughnet.config import build_config
    from seethroughnet.utils.safe_load import ConfigFileError

    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigFileError) as e:
        build_config(str(path))
    msg = str(e.value)
    assert str(path) in msg and expected in msg
    assert "mapping" in msg  # what was expected: a YAML mapping of config keys
    # the same as a _BASE_ file, named with the file that pulls it in
    child = tmp_path / "child.yaml"
    child.write_text(f'_BASE_: "{name}"\nSEED: 1\n')
    with pytest.raises(ConfigFileError) as e:
        build_config(str(child))
    msg = str(e.value)
    assert str(path) in msg and str(child) in msg and expected in msg
