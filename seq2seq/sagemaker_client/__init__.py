"""Run the image on Amazon SageMaker with boto3: `python -m seq2seq.sagemaker_client --help`."""
