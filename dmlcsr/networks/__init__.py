"""The PyTorch networks: DML-CSR (the product) and EAGRNet (the latency baseline)."""

from dmlcsr.networks.abn import InPlaceABN
from dmlcsr.networks.dml_csr import DML_CSR
from dmlcsr.networks.eagrnet import EAGRNet

__all__ = ["DML_CSR", "EAGRNet", "InPlaceABN"]
