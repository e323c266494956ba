"""The PyTorch networks: DML-CSR (the product) and EAGRNet (the latency baseline)."""

from dmlcsr.networks.abn import InPlaceABN
from dmlcsr.networks.dml_csr import DML_CSR

__all__ = ["DML_CSR", "InPlaceABN"]
