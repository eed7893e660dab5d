"""ONNX Forge engine: everything the window and the command line do, with no Qt in it.

Importing this package must stay cheap: torch, onnxruntime, onnxruntime_genai and transformers
are imported inside the functions that need them, never at module level.
"""

__version__ = "0.1.0"
