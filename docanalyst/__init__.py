"""docanalyst: whole-PDF, single-pass structured extraction with in-process vLLM.

Importing the package must stay fast and GPU-free: nothing here imports vllm, torch or pymupdf.
"""

__version__ = "0.1.0"
