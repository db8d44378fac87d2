"""Evaluation: extraction quality measured on labelled documents (``docanalyst eval``).

``normalize`` and ``fields`` turn values into comparable forms, ``datasets`` reads labels (CUAD, the paper
ground truth, a user's own CSV/JSONL), ``scoring`` counts right/wrong/missing/spurious, ``runner`` drives the
pipeline and ``report`` writes the Markdown and the chart. Only ``runner`` and ``report`` touch adapters.
"""
