"""Stopping a command: SIGTERM is handled as Ctrl-C (exit 143, one line, nothing half-written),
leftovers of killed writes go on the next write, and temporary names fit the name limit."""

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time

import numpy as np
from volume_data import oblique_affine, phantom, write_nifti

from medfuse._shared.files import NAME_LIMIT, new_temporary_beside, partial_prefix, write_atomically
from medfuse.io.images import save_image


def test_sigterm_stops_a_fusion_in_one_line_and_leaves_nothing(tmp_path, tiny_weights):
    shape = (192, 192, 48)
    write_nifti(tmp_path / "mr.nii", phantom(shape) * 700, oblique_affine())
    write_nifti(tmp_path / "pet.nii", phantom(shape, inner=0.1, outer=1.0) * 5, oblique_affine())
    command = [
        sys.executable,
        "-m",
        "medfuse",
        "fuse",
        str(tmp_path / "mr.nii"),
        str(tmp_path / "pet.nii"),
        "-o",
        str(tmp_path / "out.nii.gz"),
        "--weights",
        str(tiny_weights),
        "--rule",
        "sfnn",
    ]
    leader, follower = pty.openpty()  # standard error on a terminal, so that the progress bar is drawn
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # of 100 columns
    process = subprocess.Popen(command, stderr=follower, env={**os.environ, "OMP_NUM_THREADS": "1"})
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 120
    while b"fusing" not in seen and time.monotonic() < deadline:  # the progress bar: the work has begun
        seen += os.read(leader, 1024)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes when the process has gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    stderr = seen.decode("utf-8", "replace").replace("\r\n", "\n")
    assert process.returncode == 143 and "Traceback" not in stderr and "error" not in stderr
    assert stderr.rstrip().endswith("medfuse fuse: terminated (SIGTERM); nothing half-written was left")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mr.nii", "pet.nii"]


def test_the_next_write_removes_what_a_killed_write_left(tmp_path):
    target = tmp_path / "fused.png"
    leftover = new_temporary_beside(target)  # what a write killed by SIGKILL leaves
    other = new_temporary_beside(tmp_path / "other.png")
    save_image(target, np.zeros((4, 4), np.uint8))
    assert not leftover.exists() and other.exists() and target.is_file()


def test_temporary_names_fit_the_name_limit_for_the_longest_legal_name(tmp_path):
    longest = tmp_path / ("x" * (NAME_LIMIT - 4) + ".png")
    assert len(longest.name.encode()) == NAME_LIMIT
    save_image(longest, np.zeros((4, 4), np.uint8))
    assert longest.is_file() and len(partial_prefix(longest).encode()) + len("12345678.part") <= NAME_LIMIT
    write_atomically(tmp_path / ("é" * 120 + ".bin"), lambda path: path.write_bytes(b"x"))
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([longest.name, "é" * 120 + ".bin"])
