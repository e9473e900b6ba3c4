"""TensorFlow's start-up log lines, held to `TF_CPP_MIN_LOG_LEVEL` as TensorFlow itself no longer does.

TensorFlow 2.19 and later log through absl before absl's logging is initialized, and such lines
reach stderr whatever `TF_CPP_MIN_LOG_LEVEL` says (tensorflow/tensorflow#100442). With 2.21 every
command here began with eight such lines (oneDNN, CUDA drivers, CPU features), twice over.
While TensorFlow is imported, :func:`filtered_start_up_logs` captures file descriptor 2; then it
writes back every line that is not a log line and every log line whose severity the variable
keeps (0 keeps all, 1 drops INFO, 2 drops WARNING too, 3 keeps FATAL alone). Nothing is
filtered when the variable is unset or 0, or once TensorFlow is imported.

Example:
>>> kept_lines(["W0000 00:00:17 1 port.cc:1] note\\n", "E0000 00:00:17 1 cuda.cc:52] failed\\n", "plain\\n"], 2)
['E0000 00:00:17 1 cuda.cc:52] failed\\n', 'plain\\n']
"""

import contextlib
import os
import re
import sys
import tempfile

# absl's prefix: severity letter, month and day, e.g. "I0000 00:00:1796601553.577184   27100 port.cc:153] ...".
_LOG_LINE = re.compile(r"[IWEF]\d{4} ")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
# absl's notice that the lines above go to stderr because logging is not initialized yet.
_PRE_INIT_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# The second line of cpu_feature_guard's INFO message, which has no prefix of its own.
_CONTINUATION = "To enable the following instructions:"


def min_log_level():
    """`TF_CPP_MIN_LOG_LEVEL` as an integer 0-3 (0 when unset or not a number)."""
    value = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0").strip()
    return min(max(int(value), 0), 3) if value.isdigit() else 0


def kept_lines(lines, level):
    """The lines of captured stderr that `TF_CPP_MIN_LOG_LEVEL=level` keeps, in order."""
    kept, dropped_previous = [], False
    for line in lines:
        if _LOG_LINE.match(line):
            dropped_previous = _SEVERITY[line[0]] < level
            if not dropped_previous:
                kept.append(line)
        elif line.startswith(_PRE_INIT_NOTICE):
            dropped_previous = False
            if level == 0:
                kept.append(line)
        elif not (dropped_previous and line.startswith(_CONTINUATION)):
            dropped_previous = False
            kept.append(line)
    return kept


@contextlib.contextmanager
def filtered_start_up_logs():
    """Within it, stderr is captured; on leaving, the lines `TF_CPP_MIN_LOG_LEVEL` keeps are written back.

    Written back even when the block raises, so that nothing an error printed is lost.

    Example:
    >>> with filtered_start_up_logs():
    ...     import tensorflow  # doctest: +SKIP
    """
    level = min_log_level()
    if level == 0 or "tensorflow" in sys.modules:
        yield
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a daemon closed it): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            sys.stderr.write("".join(kept_lines(text.splitlines(keepends=True), level)))
            sys.stderr.flush()
