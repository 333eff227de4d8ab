"""Progress lines on stderr for long conversions, at most one every `interval` seconds."""

import sys
import time


class Progress:
    """Reports `label: 42% (1,234,567 lines, 85,000 lines/s)` while work goes on.

    Nothing is printed for work that ends within the first interval, so short inputs stay quiet.
    """

    def __init__(self, label: str, enabled: bool = True, interval: float = 2.0, stream=None):
        self.label = label
        self.enabled = enabled
        self.interval = interval
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self._last = self.started
        self._printed = False

    def update(self, fraction: float, lines: int) -> None:
        """`fraction` of the input done (0..1) after `lines` lines."""
        now = time.monotonic()
        if not self.enabled or now - self._last < self.interval:
            return
        self._last = now
        rate = lines / max(now - self.started, 1e-9)
        self.stream.write(f"{self.label}: {100 * fraction:.0f}% ({lines:,} lines, {rate:,.0f} lines/s)\n")
        self.stream.flush()
        self._printed = True

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.started
