"""Run one tiny DPO round under `accelerate launch` (FSDP, gloo) and record, per rank, what a GPU node would hold.

    accelerate launch --config_file params/accelerate/fsdp_cpu_tiny.yaml --num_processes 2 tests/fsdp_probe.py \
        RUN OUT_DIR OVERRIDES_JSON

Writes OUT_DIR/rank<N>.json. It observes the real code from outside, so that it runs on any version of it:
- `loads`: for each model built by from_pretrained / from_config, which of the two built it (only the first reads
  the weights) and how many parameter elements it returned with real values and on the meta device (stands in
  for a 70b rank's host memory at load);
- `reference_units` (when training starts), `policy_units` (at each substep): FSDP2 units of the two models (stands in
  for the reference's per-GPU memory: one unit gathers the whole model in each forward);
- `substeps`: after each micro-batch that is not the last of a step, whether every trainable parameter's gradient
  is a shard (DTensor) and how many FSDP parameters keep an unsharded accumulated gradient (stands in for the
  accumulation memory on a GPU).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _elements(model) -> dict:
    meta = sum(p.numel() for p in model.parameters() if p.device.type == "meta")
    return {"real": sum(p.numel() for p in model.parameters()) - meta, "meta": meta}


def _units(model) -> int:
    from torch.distributed.fsdp import FSDPModule

    return sum(isinstance(m, FSDPModule) for m in model.modules())


def _held_unsharded(model) -> int:
    """FSDP parameters holding a full (unsharded) gradient: on the unsharded parameter, or accumulated apart in
    another dtype (torch's FSDP2 internals: FSDPParam._unsharded_param, .unsharded_accumulated_grad)."""
    from torch.distributed.fsdp import FSDPModule

    held, seen = 0, set()
    for m in model.modules():
        group = m._get_fsdp_state()._fsdp_param_group if isinstance(m, FSDPModule) else None
        if group is None or id(group) in seen:  # modules sharded together share one group
            continue
        seen.add(id(group))
        for fp in group.fsdp_params:
            full = getattr(fp, "_unsharded_param", None)
            held += fp.unsharded_accumulated_grad is not None or (full is not None and full.grad is not None)
    return held


def main(run: str, out_dir: str, overrides: str) -> None:
    import transformers
    import trl
    from torch.distributed.tensor import DTensor
    from transformers import TrainerCallback

    from med42_utils.dpo.train import train_round
    from med42_utils.params import load_params

    rank = int(os.environ.get("RANK", "0"))
    rec: dict = {"rank": rank, "loads": [], "substeps": []}
    auto = transformers.AutoModelForCausalLM
    for name in ("from_pretrained", "from_config"):
        original = getattr(auto, name)

        def recorded(*a, _original=original, _name=name, **kw):
            model = _original(*a, **kw)
            rec["loads"].append({"via": _name, **_elements(model)})
            return model

        setattr(auto, name, recorded)

    class Substeps(TrainerCallback):
        def on_substep_end(self, args, state, control, model=None, **kw):
            grads = [p.grad for p in model.parameters() if p.requires_grad]
            rec["substeps"].append({
                "step": state.global_step, "grads": len(grads), "none": sum(g is None for g in grads),
                "sharded": sum(isinstance(g, DTensor) for g in grads), "unsharded_held": _held_unsharded(model),
                "policy_units": _units(model)})

    train = trl.DPOTrainer.train

    def probed_train(self, *a, **kw):
        rec["reference_units"] = _units(self.ref_model) if self.ref_model is not None else None
        self.add_callback(Substeps())
        return train(self, *a, **kw)

    trl.DPOTrainer.train = probed_train
    params = load_params("tiny", json.loads(overrides))
    train_round(params, run, "round1")
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(rec))


if __name__ == "__main__":
    main(*sys.argv[1:4])
