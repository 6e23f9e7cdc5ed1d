#!/usr/bin/env python3
"""Runs a command under a pseudo-terminal and drives it like a person at a keyboard.

Usage: pty-run.py '<json>' where json = {"argv": [...], "steps": [...], "timeout": s, "env": {...}}
Steps: {"expect": "regex"} waits until the output so far matches (searching after the last match);
{"send": "text"} types text (\\u0003 is Ctrl-C, \\u0004 Ctrl-D); {"sleep": s}.
Prints one JSON line: {"output": ..., "status": exit code or -signal, "timedOut": bool, "failedStep": i or null}.
"""
import json, os, pty, re, select, signal, sys, time

spec = json.loads(sys.argv[1])
deadline = time.time() + spec.get("timeout", 60)
pid, fd = pty.fork()
if pid == 0:
    env = dict(os.environ)
    env.update(spec.get("env", {}))
    os.execvpe(spec["argv"][0], spec["argv"], env)

out = b""
pos = 0
failed = None
timed_out = False

def pump(wait):
    global out
    r, _, _ = select.select([fd], [], [], wait)
    if r:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return False
        if not data:
            return False
        out += data
    return True

for i, step in enumerate(spec.get("steps", [])):
    if "send" in step:
        os.write(fd, step["send"].encode())
    elif "sleep" in step:
        end = time.time() + step["sleep"]
        while time.time() < end:
            pump(0.05)
    elif "expect" in step:
        rx = re.compile(step["expect"].encode(), re.S)
        while True:
            m = rx.search(out, pos)
            if m:
                pos = m.end()
                break
            if time.time() > deadline or not pump(0.1):
                failed = i
                break
        if failed is not None:
            break

# Read until the child exits.
status = None
while True:
    try:
        wpid, st = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        break
    if wpid == pid:
        status = os.waitstatus_to_exitcode(st)
        break
    if time.time() > deadline:
        timed_out = True
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        break
    pump(0.1)
while pump(0.05):
    pass
print(json.dumps({"output": out.decode("utf-8", "replace"), "status": status, "timedOut": timed_out, "failedStep": failed}))
