"""dmlcsr-bench: DML-CSR vs EAGRNet latency across backends."""
