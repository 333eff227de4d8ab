"""Batch translation on the command line, with the same Translator the endpoint uses.

    python -m seq2seq.translate --model DIR [--beam-size 5] [--reference REF] < source.txt > hyp.txt

Input: one sentence per line, whitespace-tokenized for a word-level model (OOV tokens become <unk>) or raw
text for a model with subword models (subword.src.model, subword.trg.model); output: one translation per
line, same order (detokenised text with subword models; an empty line gives an empty line). With
--reference, sacreBLEU's corpus score (standard settings: cased, 13a) and its signature go to stderr.
"""
import argparse
import io
import logging
import os
import sys
import time
from typing import Iterable, List, TextIO

from seq2seq import failure_text, runtime_env
from seq2seq.atomic_write import write_json
from seq2seq.errors import UserError
from seq2seq.serving.options import apply_overrides

logger = logging.getLogger("seq2seq.translate")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m seq2seq.translate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model directory (params.best, config.json, vocab.*.json)")
    parser.add_argument("--input", help="source file (default: stdin)")
    parser.add_argument("--output", help="translation file (default: stdout)")
    parser.add_argument("--reference", help="reference file: report sacreBLEU on stderr")
    parser.add_argument("--beam-size", type=int, help="beam width (default: the model's)")
    parser.add_argument("--length-penalty-alpha", type=float)
    parser.add_argument("--length-penalty-beta", type=float)
    parser.add_argument("--max-output-length", type=int)
    parser.add_argument("--no-shortlist", dest="shortlist", action="store_false", default=None,
                        help="score the whole target vocabulary (default: the model's shortlist, if it has one)")
    parser.add_argument("--block-ngram-repeat", type=int, help="forbid any n-gram of this size twice (0: off)")
    parser.add_argument("--coverage-penalty", type=float, help="GNMT coverage penalty weight (0: off)")
    parser.add_argument("--chunk-size", type=int, default=1024,
                        help="sentences handed to the translator per call (it batches internally)")
    parser.add_argument("--device", default="cpu", help="cpu or gpu:<i>")
    parser.add_argument("--stats-json", help="write {sentences, seconds, sentences_per_second, bleu?} here")
    return parser.parse_args(argv)


def load_translator(model_dir: str, device: str):
    """Translator.load on "cpu" or "gpu:<i>"; a missing directory is a UserError."""
    if not os.path.isdir(model_dir):
        raise UserError(f"--model {model_dir}: no such directory")
    mx = runtime_env.import_mxnet()
    from seq2seq.inference.translator import Translator

    if device == "cpu":
        context = mx.cpu()
    elif device.startswith("gpu:") and device[4:].isdigit():
        from seq2seq.training.devices import check_gpu_visible
        check_gpu_visible(int(device[4:]), f"--device {device}", "--device cpu")
        context = mx.gpu(int(device[4:]))
    else:
        raise UserError(f"--device {device!r}: expected cpu or gpu:<index>")
    try:
        return Translator.load(model_dir, context=context)
    except UserError:
        raise
    except Exception as error:  # a corrupt or incomplete model: one line, the trace in the debug log
        logger.debug("loading %s failed", model_dir, exc_info=True)
        raise UserError(f"--model {model_dir}: cannot load the model ({type(error).__name__}: "
                        f"{failure_text.one_line(error)}); it must hold params.best, config.json and the "
                        f"vocabularies of one training job") from None


def decode_options(translator, args: argparse.Namespace):
    """The model's default DecodeOptions with the command-line overrides applied (validated)."""
    overrides = {name: getattr(args, name) for name in
                 ("beam_size", "length_penalty_alpha", "length_penalty_beta", "max_output_length", "shortlist",
                  "block_ngram_repeat", "coverage_penalty")
                 if getattr(args, name) is not None}
    for name in ("beam_size", "max_output_length"):
        if name in overrides and overrides[name] < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {overrides[name]}")
    for name in ("block_ngram_repeat", "coverage_penalty"):
        if name in overrides and overrides[name] < 0:
            raise UserError(f"--{name.replace('_', '-')} must be at least 0, got {overrides[name]}")
    return apply_overrides(translator.default_options, overrides)


def translate_lines(translator, lines: List[str], options, chunk_size: int) -> Iterable[str]:
    """Yield one translation per input line, in order: tokens joined by spaces, or detokenised text."""
    for start in range(0, len(lines), max(1, chunk_size)):
        for translation in translator.translate_text(lines[start:start + chunk_size], options):
            yield translation.text


def corpus_bleu(hypotheses: List[str], reference_path: str):
    """sacreBLEU corpus score of `hypotheses` against one reference file; returns (score, signature)."""
    from sacrebleu.metrics import BLEU

    references = _read_lines(reference_path)
    if len(references) != len(hypotheses):
        raise UserError(f"--reference {reference_path}: {len(references)} lines, but the input has "
                        f"{len(hypotheses)} lines")
    bleu = BLEU()
    return bleu.corpus_score(hypotheses, [references]), bleu.get_signature()


def _read_lines(path: str) -> List[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return [line.rstrip("\n").rstrip("\r") for line in handle]
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not valid UTF-8 at byte offset {error.start}") from None


def run(args: argparse.Namespace, stdin: TextIO, stdout: TextIO, stderr: TextIO) -> int:
    translator = load_translator(args.model, args.device)
    options = decode_options(translator, args)
    lines = _read_lines(args.input) if args.input else [line.rstrip("\n").rstrip("\r") for line in stdin]
    start = time.perf_counter()
    hypotheses = list(translate_lines(translator, lines, options, args.chunk_size))
    seconds = time.perf_counter() - start
    output = "".join(hypothesis + "\n" for hypothesis in hypotheses)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(output)
    else:
        stdout.write(output)
        stdout.flush()
    rate = len(lines) / seconds if seconds > 0 else float("inf")
    output_tokens = sum(len(hypothesis.split()) for hypothesis in hypotheses)
    stats = {"sentences": len(lines), "seconds": round(seconds, 3), "sentences_per_second": round(rate, 2),
             "output_tokens": output_tokens, "beam_size": options.beam_size}
    print(f"translated {len(lines)} sentences in {seconds:.2f} s ({rate:.1f} sentences/s)", file=stderr)
    if args.reference:
        score, signature = corpus_bleu(hypotheses, args.reference)
        print(f"{score} {signature}", file=stderr)
        stats.update(bleu=round(score.score, 2), bleu_signature=str(signature))
    if args.stats_json:
        write_json(args.stats_json, stats)
    return 0


def main(argv=None) -> int:
    runtime_env.apply()           # before MXNet is imported: the decoding process settings
    level = os.environ.get("SEQ2SEQ_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=level if level in ("DEBUG", "INFO", "WARNING", "ERROR") else "WARNING",
                        format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    # UTF-8 whatever the locale; detached afterwards so that the process's own streams stay open.
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8") if not args.input else io.StringIO()
    stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8") if not args.output else io.StringIO()
    try:
        return run(args, stdin, stdout, sys.stderr)
    except UserError as error:
        print(f"translate: {error.message}", file=sys.stderr)
        return 1
    except UnicodeDecodeError as error:
        print(f"translate: standard input is not valid UTF-8 (byte {error.start} of a read block)", file=sys.stderr)
        return 1
    except Exception as error:  # one line on stderr; SEQ2SEQ_LOG_LEVEL=DEBUG shows the traceback
        logger.debug("translate failed", exc_info=True)
        if failure_text.is_out_of_memory(error):
            print("translate: " + failure_text.out_of_memory_advice(
                error, args.device, "decoding", "lower --chunk-size or --beam-size, or use --device cpu"),
                file=sys.stderr)
            return 1
        print(f"translate: internal error ({type(error).__name__}: {failure_text.one_line(error)}); "
              f"SEQ2SEQ_LOG_LEVEL=DEBUG shows the traceback", file=sys.stderr)
        return 1
    finally:
        for stream in (stdin, stdout):
            if isinstance(stream, io.TextIOWrapper):
                stream.detach()  # flushes first


if __name__ == "__main__":
    sys.exit(main())
