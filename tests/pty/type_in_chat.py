# Run a program in a pseudo-terminal, as a person at a keyboard would:
#   python3 type_in_chat.py PROGRAM ARGS...
# Commands on stdin, one per line, answered on stdout:
#   type TEXT     send TEXT (Python escapes allowed, e.g. \r, \x03) to the terminal
#   wait TEXT     wait until the screen output contains TEXT (escapes allowed);
#                 prints "seen" and forgets the output up to there
#   exit          wait for the program to end; prints "exit CODE" and "screen REPR"
import os
import pty
import select
import sys
import time

pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])

screen = b""
everything = b""


def pump(timeout):
    global screen, everything
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return False
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    if not data:
        return None
    screen += data
    everything += data
    return True


def unescape(s):
    return s.encode("utf-8").decode("unicode_escape").encode("latin-1")


for line in sys.stdin:
    cmd, _, arg = line.rstrip("\n").partition(" ")
    if cmd == "type":
        os.write(fd, unescape(arg))
    elif cmd == "wait":
        want = unescape(arg)
        deadline = time.time() + 20
        while want not in screen:
            if time.time() > deadline or pump(0.1) is None:
                print("missing %r in %r" % (want, screen), flush=True)
                sys.exit(1)
        screen = screen[screen.index(want) + len(want):]
        print("seen", flush=True)
    elif cmd == "exit":
        deadline = time.time() + 20
        while time.time() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                while pump(0.05):
                    pass
                print("exit %d" % os.waitstatus_to_exitcode(status), flush=True)
                print("screen %r" % everything, flush=True)
                sys.exit(0)
            pump(0.05)
        print("still running", flush=True)
        sys.exit(1)
