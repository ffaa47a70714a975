#!/usr/bin/env python
"""SeeThroughNet training and evaluation script (detectron2 conventions).

    python projects/SeeThroughNet/train_net.py --config-file <yaml> [--num-gpus N] [--resume] \
        [--eval-only [--eval-random-weights]] [--allow-unsafe-config] [--trust-weights-file] \
        [KEY VALUE ...]

``--eval-only`` needs ``MODEL.WEIGHTS`` (or ``--resume`` with a checkpoint in ``OUTPUT_DIR``);
``--eval-random-weights`` evaluates a randomly initialised model on purpose
(``MODEL.ALLOW_RANDOM_INIT`` is training's opt-out only).

Multi-process runs use NCCL on GPUs and gloo on CPU (``MODEL.DEVICE cpu --num-gpus N``
starts N CPU processes).
"""

import os
import sys

# allow running from a checkout without `pip install -e .`
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from detectron2.engine import default_argument_parser, launch  # noqa: E402

from seethroughnet.engine import (  # noqa: E402
    Trainer,
    add_eval_arguments,
    check_eval_weights,
    setup,
)
from seethroughnet.utils.safe_load import add_safety_arguments  # noqa: E402


def main(args):
    cfg = setup(args)
    if args.eval_only:
        check_eval_weights(
            cfg, resume=args.resume, allow_random=getattr(args, "eval_random_weights", False)
        )
        model = Trainer.build_model(cfg)
        Trainer.build_checkpointer(cfg, model).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        return Trainer.test(cfg, model)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = add_eval_arguments(add_safety_arguments(default_argument_parser())).parse_args()
    print("Command Line Args:", args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
