"""Model files and what they may hold.

Configs, checkpoints and trust, the model record, pretrained weights.
"""
