"""RNN sequence-to-sequence training and serving on MXNet Gluon, SageMaker-compatible."""

__version__ = "0.1.0"
