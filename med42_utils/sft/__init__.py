"""03_sft: SFTTrainer from params, launch plans, LoRA, resume."""
