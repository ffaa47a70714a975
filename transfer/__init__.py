"""Detection transfer of the SeeThroughNet encoder (paper Table 5); see transfer/README.md.

Kept import-free: submodules pull in detectron2/torch only when imported.
"""
