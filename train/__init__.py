"""Training: QAT of the base classifier (train.qat) and EOPM training of the generator (train.eopm)."""
