# Run a program in an 80x24 pseudo-terminal, as a person at a keyboard would,
# and keep the screen it draws (a small terminal emulator: enough of xterm for
# a line editor: cursor moves, erase, wrapping, double-width characters).
#   python3 type_in_chat.py PROGRAM ARGS...
# Commands on stdin, one per line, answered on stdout:
#   type TEXT     send TEXT (Python escapes allowed, e.g. \r, \x03, \x1b[D) to the terminal
#   wait TEXT     wait until a row of the screen contains TEXT (escapes allowed), or a
#                 line wrapped over several rows does; prints "seen"
#   rows          once the output has been quiet for a moment, print the screen:
#                 "rows N", then its first N rows (down to the last non-blank one),
#                 each as "| ROW"
#   exit          wait for the program to end; prints "exit CODE", then its rows
import codecs
import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time
import unicodedata

ROWS, COLS = 24, 80

pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    os.environ["TERM"] = "xterm"
    os.execv(sys.argv[1], sys.argv[1:])


def width(ch):
    if unicodedata.combining(ch) or ch in "\u200b\u200d":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


class Screen:
    def __init__(self):
        self.grid = [[" "] * COLS for _ in range(ROWS)]
        self.r = self.c = 0
        self.wrap = False  # xterm's pending wrap: the last column was written
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.esc = None

    def rows(self):
        out = ["".join(ch for ch in row if ch is not None).rstrip() for row in self.grid]
        while out and not out[-1]:
            out.pop()
        return out

    def down(self):
        if self.r == ROWS - 1:
            self.grid.pop(0)
            self.grid.append([" "] * COLS)
        else:
            self.r += 1

    def feed(self, data):
        for ch in self.decoder.decode(data):
            if self.esc is not None:
                self.escape(ch)
            elif ch == "\x1b":
                self.esc = ""
            elif ch == "\r":
                self.c, self.wrap = 0, False
            elif ch == "\n":
                self.wrap = False
                self.down()
            elif ch == "\b":
                self.c, self.wrap = max(self.c - 1, 0), False
            elif ch == "\t":
                self.c = min((self.c // 8 + 1) * 8, COLS - 1)
            elif ch < " " or ch == "\x7f":
                pass
            else:
                self.put(ch)

    def put(self, ch):
        w = width(ch)
        if w == 0:
            return
        if self.wrap or self.c + w > COLS:
            self.c, self.wrap = 0, False
            self.down()
        self.grid[self.r][self.c] = ch
        if w == 2:
            self.grid[self.r][self.c + 1] = None  # the right half of a wide character
        self.c += w
        if self.c >= COLS:
            self.c, self.wrap = COLS - 1, True

    def escape(self, ch):
        self.esc += ch
        seq = self.esc
        if seq == "[" or (seq.startswith("[") and not ("@" <= ch <= "~")):
            return
        self.esc = None
        if not seq.startswith("["):
            return  # ESC x: nothing a line editor needs
        params, final = seq[1:-1], seq[-1]
        if params.startswith("?"):
            return  # modes: bracketed paste, cursor visibility, synchronized output
        nums = [int(p) if p.isdigit() else 0 for p in params.split(";")] if params else []
        n = max(nums[0], 1) if nums else 1
        self.wrap = False
        if final == "A":
            self.r = max(self.r - n, 0)
        elif final == "B":
            self.r = min(self.r + n, ROWS - 1)
        elif final == "C":
            self.c = min(self.c + n, COLS - 1)
        elif final == "D":
            self.c = max(self.c - n, 0)
        elif final == "G":
            self.c = min(n - 1, COLS - 1)
        elif final == "H":
            self.r = min(n - 1, ROWS - 1)
            self.c = min(max(nums[1], 1) - 1, COLS - 1) if len(nums) > 1 else 0
        elif final == "K":
            mode = nums[0] if nums else 0
            row = self.grid[self.r]
            span = {0: range(self.c, COLS), 1: range(0, self.c + 1), 2: range(COLS)}[mode]
            for i in span:
                row[i] = " "
        elif final == "J":
            mode = nums[0] if nums else 0
            if mode == 0:
                for i in range(self.c, COLS):
                    self.grid[self.r][i] = " "
                for r in range(self.r + 1, ROWS):
                    self.grid[r] = [" "] * COLS
            elif mode == 2:
                self.grid = [[" "] * COLS for _ in range(ROWS)]
        elif final == "n" and nums == [6]:
            os.write(fd, b"\x1b[%d;%dR" % (self.r + 1, self.c + 1))
        # m (colours) and anything else: no effect on the text


screen = Screen()


def pump(timeout):
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return False
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    if not data:
        return None
    screen.feed(data)
    return True


def unescape(s):
    return s.encode("utf-8").decode("unicode_escape").encode("latin-1")


def print_rows():
    rows = screen.rows()
    print("rows %d" % len(rows))
    for row in rows:
        print("| " + row)
    sys.stdout.flush()


def settle():
    deadline = time.time() + 20
    while time.time() < deadline and pump(0.2):
        pass


for line in sys.stdin:
    cmd, _, arg = line.rstrip("\n").partition(" ")
    if cmd == "type":
        os.write(fd, unescape(arg))
    elif cmd == "wait":
        want = unescape(arg).decode("utf-8")
        deadline = time.time() + 20
        # A line longer than the terminal wraps onto the next row: look in
        # the rows joined too (a wrapped row is full, so nothing is lost).
        while not (any(want in row for row in screen.rows()) or want in "".join(screen.rows())):
            if time.time() > deadline or pump(0.1) is None:
                print("missing %r in rows %r" % (want, screen.rows()), flush=True)
                sys.exit(1)
        print("seen", flush=True)
    elif cmd == "rows":
        settle()
        print_rows()
    elif cmd == "exit":
        deadline = time.time() + 20
        while time.time() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                while pump(0.05):
                    pass
                print("exit %d" % os.waitstatus_to_exitcode(status), flush=True)
                print_rows()
                sys.exit(0)
            pump(0.05)
        print("still running", flush=True)
        sys.exit(1)
