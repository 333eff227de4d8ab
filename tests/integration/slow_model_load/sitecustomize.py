"""Put on PYTHONPATH of `container/serve` by tests/integration/test_serve_readiness.py: every gunicorn worker
but the first to load its model waits SEQ2SEQ_TEST_SLOW_LOAD_S seconds more before the load counts as done.

The first worker's /ping says 200 while the others are still "loading", which opens the window in which a
worker that accepts requests before its model is loaded answers 503. The marker file
SEQ2SEQ_TEST_SLOW_LOAD_MARKER records that the first load happened.
"""
import importlib.abc
import importlib.machinery
import os
import sys
import time


class _PatchLoadTranslator(importlib.abc.MetaPathFinder):
    """Wraps seq2seq.serving.wsgi.load_translator when that module is imported (in each worker)."""

    def find_spec(self, name, path, target=None):
        if name != "seq2seq.serving.wsgi":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        original_exec = spec.loader.exec_module

        def exec_module(module):
            original_exec(module)
            load = module.load_translator

            def slow_load(*args, **kwargs):
                translator = load(*args, **kwargs)
                try:
                    os.close(os.open(os.environ["SEQ2SEQ_TEST_SLOW_LOAD_MARKER"], os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    time.sleep(float(os.environ["SEQ2SEQ_TEST_SLOW_LOAD_S"]))
                return translator

            module.load_translator = slow_load

        spec.loader.exec_module = exec_module
        return spec


if os.environ.get("SEQ2SEQ_TEST_SLOW_LOAD_S"):
    sys.meta_path.insert(0, _PatchLoadTranslator())
