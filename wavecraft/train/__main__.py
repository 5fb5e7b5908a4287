"""`python -m wavecraft.train codec|lm --config RECIPE [key=value ...]`, the torchrun entry point:

    torchrun --nproc_per_node=2 -m wavecraft.train lm --config recipes/musicgen_small.yaml
"""
import sys

from wavecraft.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
