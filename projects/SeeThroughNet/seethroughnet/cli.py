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


def run(args, trainer_cls=None, setup_fn=None, on_results=None):
    """One process's work for a detectron2 trainer: train (``trainer.train()``'s last evaluation
    results) or, with ``--eval-only``, load the weights strictly and evaluate
    (``trainer_cls.test``'s results). ``trainer_cls`` / ``setup_fn``: the project's ``Trainer`` and
    ``setup`` by default (transfer/train_net.py passes its own). ``on_results(cfg, results,
    model, mode)`` (``mode`` ``"train"`` or ``"eval"``, ``model`` without its DDP wrapper) may
    complete or record the results and returns them."""
    trainer_cls, setup_fn = trainer_cls or Trainer, setup_fn or setup
    cfg = setup_fn(args)
    if args.eval_only:
        check_eval_weights(
            cfg, resume=args.resume, allow_random=getattr(args, "eval_random_weights", False)
        )
        model = trainer_cls.build_model(cfg)
        trainer_cls.build_checkpointer(cfg, model).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        results = trainer_cls.test(cfg, model)
        return on_results(cfg, results, model, "eval") if on_results else results
    trainer = trainer_cls(cfg)
    trainer.resume_or_load(resume=args.resume)
    results = trainer.train()
    if on_results is None:
        return results
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    return on_results(cfg, results, model, "train")


def train(args):
    """SeeThroughNet's :func:`run` (``train_net.py``'s ``main``)."""
    return run(args)


def launch_from_args(main, args):
    """``main(args)`` in ``args.num_gpus`` processes per machine through detectron2's
    ``launch`` (detectron2's ``--num-machines`` / ``--machine-rank`` / ``--dist-url``)."""
    return launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


def train_parser():
    """detectron2's ``default_argument_parser`` with the project's safety and eval flags."""
    return add_eval_arguments(add_safety_arguments(default_argument_parser()))


def train_main(argv=None):
    """Parse ``argv`` (default ``sys.argv[1:]``) and run :func:`train` in ``--num-gpus``
    processes through detectron2's ``launch``."""
    args = train_parser().parse_args(argv)
    print("Command Line Args:", args)
    launch_from_args(train, args)
    return 0
