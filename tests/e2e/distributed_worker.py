"""``tools/train_net.py``'s ``main`` in every process of a launch, recording what each process saw.

Run as ``python -m tests.e2e.distributed_worker <train_net arguments>``. Each process writes
``OUTPUT_DIR/rank<r>.pth``: its own loss dicts per iteration, its final ``state_dict``, the types of its
normalization layers, and (rank 0) the losses Detectron2 logged, read from the event storage.
"""
import os

import torch
from detectron2.engine import default_argument_parser
from detectron2.utils import comm

from ccnet_d2.engine import launch

from tests.common import load_tool

train_net = load_tool("train_net")


class RecordingTrainer(train_net.Trainer):
    def train(self):
        model = getattr(self.model, "module", self.model)
        own_losses = []
        model.register_forward_hook(
            lambda module, inputs, output: own_losses.append({k: v.item() for k, v in output.items()})
            if module.training else None)
        result = super().train()
        logged = {key: [value for value, _ in self.storage.history(key).values()]
                  for key in ("total_loss", "loss_sem_seg")} if comm.is_main_process() else None
        norms = sorted({type(m).__name__ for m in model.modules() if "Norm" in type(m).__name__})
        torch.save({"own_losses": own_losses, "logged": logged, "state_dict": model.state_dict(), "norms": norms},
                   os.path.join(self.cfg.OUTPUT_DIR, f"rank{comm.get_rank()}.pth"))
        return result


def main(args):
    train_net.Trainer = RecordingTrainer
    return train_net.main(args)


if __name__ == "__main__":
    arguments = default_argument_parser().parse_args()
    launch(main, arguments.num_gpus, num_machines=arguments.num_machines, machine_rank=arguments.machine_rank,
           dist_url=arguments.dist_url, args=(arguments,))
