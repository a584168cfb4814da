"""What cardd registers into OpenMMLab: kernels for mmcv.ops, hooks, the size-bin metric."""
