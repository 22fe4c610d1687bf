"""The model: the attention codes, the GeneralizedAttention module, checkpoint loading and the efficiency
measurements (fps, memory, FLOPs). The lowest layer of the package: torch and mmcv, nothing of the tools
above it. Importing this package imports no torch; its modules do when they need it."""
