"""dmlcsr: deployment toolkit for DML-CSR face parsing (Zheng et al., CVPR 2022).

Importing this package never imports torch: the runtime (``dmlcsr.runtime``) and the
torch-free core (``dmlcsr.core``) must work where torch is not installed. The PyTorch
reference model lives in ``dmlcsr.networks`` and is imported only on demand.
"""

__version__ = "0.1.0"
