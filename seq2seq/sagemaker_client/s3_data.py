"""S3 locations of the CLI: parse `s3://bucket/key` URIs, upload a prepared data directory."""

import os
from typing import Dict, List, Tuple

from seq2seq import constants
from seq2seq.errors import UserError

CHANNELS = (constants.TRAIN_CHANNEL, constants.VALIDATION_CHANNEL, constants.VOCAB_CHANNEL)
# The flat layout `recordio_tools prepare` writes: file -> channel.
PREPARED_FILES = {
    constants.TRAIN_FILE: constants.TRAIN_CHANNEL,
    constants.VALIDATION_FILE: constants.VALIDATION_CHANNEL,
    constants.VOCAB_SOURCE_FILE: constants.VOCAB_CHANNEL,
    constants.VOCAB_TARGET_FILE: constants.VOCAB_CHANNEL,
}


def parse_s3_uri(uri: str) -> Tuple[str, str]:
    """`s3://bucket/some/key` -> ("bucket", "some/key"); UserError for anything else."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise UserError(f"{uri!r} is not an S3 URI (expected s3://bucket/prefix)")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise UserError(f"{uri!r} names no bucket (expected s3://bucket/prefix)")
    return bucket, key


def join_s3(uri: str, *parts: str) -> str:
    """Append key parts to an S3 URI with single slashes."""
    return "/".join([uri.rstrip("/")] + [part.strip("/") for part in parts if part])


def channel_files(data_dir: str) -> Dict[str, List[str]]:
    """Local files per channel, from either layout:

    * flat, as `recordio_tools prepare` writes it: train.rec, val.rec, vocab.src.json, vocab.trg.json;
    * channel directories, as under /opt/ml/input/data: train/, validation/, vocab/.
    """
    if not os.path.isdir(data_dir):
        raise UserError(f"data directory {data_dir} does not exist")
    if all(os.path.isdir(os.path.join(data_dir, channel)) for channel in CHANNELS):
        files = {channel: sorted(os.path.join(data_dir, channel, name)
                                 for name in os.listdir(os.path.join(data_dir, channel))
                                 if os.path.isfile(os.path.join(data_dir, channel, name)))
                 for channel in CHANNELS}
    else:
        files = {channel: [] for channel in CHANNELS}
        for name, channel in PREPARED_FILES.items():
            path = os.path.join(data_dir, name)
            if os.path.isfile(path):
                files[channel].append(path)
    empty = [channel for channel in CHANNELS if not files[channel]]
    if empty:
        raise UserError(f"{data_dir}: no files for channel(s) {', '.join(empty)}; expected "
                        f"{', '.join(PREPARED_FILES)} (from `python -m recordio_tools prepare`) or the "
                        f"directories {', '.join(CHANNELS)}/")
    return files


def upload_channels(s3_client, data_dir: str, s3_prefix: str, log=print) -> Dict[str, str]:
    """Upload each channel's files to `<s3_prefix>/<channel>/`; returns channel -> S3 URI."""
    bucket, key_prefix = parse_s3_uri(s3_prefix)
    uris = {}
    for channel, paths in channel_files(data_dir).items():
        for path in paths:
            key = "/".join(part for part in (key_prefix.strip("/"), channel, os.path.basename(path)) if part)
            log(f"uploading {path} -> s3://{bucket}/{key} ({os.path.getsize(path):,} bytes)")
            s3_client.upload_file(path, bucket, key)
        uris[channel] = join_s3(s3_prefix, channel) + "/"
    return uris
