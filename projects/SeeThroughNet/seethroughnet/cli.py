"""Training and evaluation entry point: ``projects/SeeThroughNet/train_net.py`` and the
``seethroughnet-train`` console script both run :func:`train_main`.

    seethroughnet-train --config-file <yaml> [--num-gpus N] [--resume] \
        [--eval-only [--eval-random-weights]] [--allow-unsafe-config] [--trust-weights-file] \
        [KEY VALUE ...]

``--eval-only`` needs ``MODEL.WEIGHTS`` (or ``--resume`` with a checkpoint in ``OUTPUT_DIR``);
``--eval-random-weights`` evaluates a randomly initialised model on purpose
(``MODEL.ALLOW_RANDOM_INIT`` is training's opt-out only). Multi-process runs use NCCL on GPUs
and gloo on CPU (``MODEL.DEVICE cpu --num-gpus N`` starts N CPU processes).
"""

from detectron2.engine import default_argument_parser, launch

from seethroughnet.engine import Trainer, add_eval_arguments, check_eval_weights, setup
from seethroughnet.utils.safe_load import add_safety_arguments


def train(args):
    """One process's work: train (``trainer.train()``'s last evaluation results) or, with
    ``--eval-only``, load the weights strictly and evaluate (``Trainer.test``'s results)."""
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


def train_parser():
    """detectron2's ``default_argument_parser`` with the project's safety and eval flags."""
    return add_eval_arguments(add_safety_arguments(default_argument_parser()))


def train_main(argv=None):
    """Parse ``argv`` (default ``sys.argv[1:]``) and run :func:`train` in ``--num-gpus``
    processes through detectron2's ``launch``."""
    args = train_parser().parse_args(argv)
    print("Command Line Args:", args)
    launch(
        train,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
    return 0
