"""``media-search evaluate``: judge the image models on edited copies of your own library.

``evaluate(lib, models=..., sample=N)`` returns the report (``run``);
``format_report`` prints it; ``edits`` makes the edited copies.
"""

from .run import evaluate, format_report, sample_files

__all__ = ["evaluate", "format_report", "sample_files"]
