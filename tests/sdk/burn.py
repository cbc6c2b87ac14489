# Live-SDK test program (tests/live_sdks.rs runs it under the pyroscope-io venv that .ci/run installs):
# profiles itself with pyroscope-io and sends to the flamedb at argv[1] as application argv[2], burning CPU
# in flamedb_hot_python for ~80% of the run and in flamedb_cold_python for the rest, for argv[3] seconds,
# uploading every argv[4] seconds (default 1, the shortest useful value: 0 makes the agent send in a busy loop).
import logging
import sys
import time

import pyroscope


def spin(seconds):
    """Busy-loops on the CPU for `seconds` of wall time; the caller's name is what the profile shows."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n = (n * 31 + 7) % 1000003
    return n


def flamedb_hot_python(seconds):
    return spin(seconds)


def flamedb_cold_python(seconds):
    return spin(seconds)


def main():
    url, app, run_seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    # The agent logs through Python logging at the level set here: failed uploads (errors) show on stderr.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    pyroscope.configure(
        application_name=app,
        server_address=url,
        sample_rate=100,
        upload_interval=int(sys.argv[4]) if len(sys.argv) > 4 else 1,
        oncpu=True,
        gil_only=True,
        enable_logging=True,
        tags={"test": "live_sdks"},
    )
    end = time.monotonic() + run_seconds
    rounds = 0
    while time.monotonic() < end:
        flamedb_hot_python(0.08)
        flamedb_cold_python(0.02)
        rounds += 1
    print(f"burn.py: {rounds} rounds done, shutting the agent down", flush=True)
    ok = pyroscope.shutdown()
    print(f"burn.py: shutdown returned {ok}", flush=True)


if __name__ == "__main__":
    main()
