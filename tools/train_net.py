#!/usr/bin/env python
"""Train or evaluate any ccnet_d2 model (Mask R-CNN + RCCA, CCNet semantic segmentation) with
Detectron2's DefaultTrainer.

    python tools/train_net.py --config-file configs/COCO-InstanceSegmentation/mask_rcnn_rcca_R_50_FPN_1x_coco.yaml
    python tools/train_net.py --config-file <cfg> --num-gpus 8                       # one machine, 8 GPUs
    python tools/train_net.py --config-file <cfg> --num-gpus 8 --num-machines 2 \
        --machine-rank 0 --dist-url tcp://<host of rank 0>:<port>                  # two machines
    python tools/train_net.py --config-file <cfg> --resume                           # continue from last_checkpoint
    python tools/train_net.py --config-file <cfg> --eval-only MODEL.WEIGHTS <model.pth>

Evaluator choice, mappers and schedulers live in ``ccnet_d2`` (``ccnet_d2.engine.Trainer``).
"""
from detectron2.config import get_cfg
from detectron2.engine import default_argument_parser, default_setup
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

import ccnet_d2  # noqa: F401  (registers the project's backbones, heads and datasets)
from ccnet_d2 import add_ccnet_config
from ccnet_d2.checkpoint import AtomicCheckpointer, explain_weights_errors
from ccnet_d2.engine import Trainer, launch


def setup(args):
    """Config = Detectron2 defaults + ccnet_d2 keys + the yaml + command-line overrides."""
    cfg = get_cfg()
    add_ccnet_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="ccnet_d2")
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        checkpointer = AtomicCheckpointer(model, save_dir=cfg.OUTPUT_DIR)  # --resume: the newest intact checkpoint
        with explain_weights_errors(checkpointer, cfg.MODEL.WEIGHTS, args.resume):
            checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = Trainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, results)
        return results
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def invoke_main() -> None:
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(args,))


if __name__ == "__main__":
    invoke_main()  # pragma: no cover
