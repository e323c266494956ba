"""The paper's figures every section compares against (Zheng et al., CVPR 2022, 473x473,
one GPU), torch-free so the runtime sections can print tables without torch."""

from __future__ import annotations

DMLCSR, EAGRNET = "DML-CSR", "EAGRNet"
#: 31 ms vs 89 ms per image
PAPER_MS = {DMLCSR: 31.0, EAGRNET: 89.0}
PAPER_RATIO = round(PAPER_MS[EAGRNET] / PAPER_MS[DMLCSR], 2)
