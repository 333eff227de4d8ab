"""`python -m recordio_tools`: convert parallel text to SageMaker seq2seq RecordIO-protobuf and back.

Subcommands: prepare, vocab, encode, decode, inspect (each has --help).
"""
