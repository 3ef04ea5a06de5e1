#!/usr/bin/env python3
"""Pseudo-terminal helper for test-progress.sh (standard library only).

  progress-pty.py run COLS OUT -- CMD...  run CMD with stdout and stderr on a pty COLS wide
                                          (TIOCSWINSZ; TERM=xterm unless set, COLUMNS unset),
                                          save every byte it wrote to OUT, parse it as below,
                                          exit with its status
  progress-pty.py parse OUT               write beside OUT:
      OUT.redraws  each in-place redraw (\r TEXT ESC[K), one a line
      OUT.screen   what a terminal shows at the end, emulating \r, \n and ESC[K (a line
                   longer than COLS would wrap there)
      OUT.maxcol   the widest any line of the screen ever got
"""
import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time


def run(cols, out, cmd):
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
    env = dict(os.environ)
    env.setdefault("TERM", "xterm")
    env.pop("COLUMNS", None)
    try:
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                 env=env)
    except OSError as e:
        sys.stderr.write("progress-pty.py: cannot run %s: %s\n" % (cmd[0], e.strerror))
        open(out, "wb").close()
        return 127
    os.close(slave)
    data = bytearray()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if not ready:
            if child.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the pty
            break
        if not chunk:
            break
        data += chunk
    os.close(master)
    try:
        status = child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        status = 124
    with open(out, "wb") as f:
        f.write(data)
    return status


def emulate(data):
    """The screen's lines at the end, and the widest a line ever got."""
    lines, line, col, widest = [], [], 0, 0
    i = 0
    while i < len(data):
        c = data[i]
        if data.startswith(b"\x1b[K", i):
            del line[col:]
            i += 3
            continue
        if c == 0x1B:  # any other escape: skip the CSI sequence
            m = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]").match(data, i)
            i = m.end() if m else i + 1
            continue
        if c == 0x0D:
            col = 0
        elif c == 0x0A:  # the pty's ONLCR makes it \r\n anyway
            lines.append(bytes(line))
            line, col = [], 0
        else:
            if col < len(line):
                line[col] = c
            else:
                line.append(c)
            col += 1
            widest = max(widest, col)
        i += 1
    if line:
        lines.append(bytes(line))
    return lines, widest


def parse(path):
    data = open(path, "rb").read()
    with open(path + ".redraws", "wb") as f:
        for text in re.findall(rb"\r([^\r\n\x1b]+)\x1b\[K", data):
            f.write(text + b"\n")
    lines, widest = emulate(data)
    with open(path + ".screen", "wb") as f:
        for line in lines:
            f.write(line + b"\n")
    with open(path + ".maxcol", "w") as f:
        f.write("%d\n" % widest)


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "run" and sys.argv[4] == "--":
        status = run(int(sys.argv[2]), sys.argv[3], sys.argv[5:])
        parse(sys.argv[3])
        return status
    if len(sys.argv) == 3 and sys.argv[1] == "parse":
        parse(sys.argv[2])
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
