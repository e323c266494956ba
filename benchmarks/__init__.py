"""dmlcsr-bench: one timing harness with three sections (latency: DML-CSR vs EAGRNet per
backend; overhead: the runtime's import time and pre+post share; photo: detect / parse /
composite on a photo of several faces), one environment record and one report writer."""
