#!/usr/bin/env python3
"""Grows Sources/shoal-agent/hot-functions.txt, the functions an idle lean agent runs, which the link of
shoal-agent places side by side (lld --symbol-ordering-file) so that the agent maps few pages of code.

Each round links shoal-agent, starts it as `shoal agent bench` against a coordinator of its own (throwaway keys,
loopback), records its page faults for a few seconds with perf, and appends the functions whose code faulted and
are not listed yet. Faults in listed functions land in a few packed pages, so the rounds converge; the script stops
when a round finds nothing new or after ROUNDS (default 15).

Usage: scripts/hot-functions.py [ROUNDS]    (needs perf; release build of shoal first: swift build -c release)
"""
import bisect, os, re, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
order_path = os.path.join(root, "Sources/shoal-agent/hot-functions.txt")
shoal = os.path.join(root, ".build/release/shoal")
lean = os.path.join(root, ".build/release/shoal-agent")


def relink():
    if os.path.exists(lean):
        os.remove(lean)
    subprocess.run(["swift", "build", "-c", "release", "--product", "shoal-agent"], cwd=root, check=True,
                   stdout=subprocess.DEVNULL)


def text_symbols():
    out = subprocess.run(["nm", "-n", "--defined-only", lean], capture_output=True, text=True, check=True).stdout
    symbols = [(int(p[0], 16), p[2]) for p in (line.split() for line in out.splitlines())
               if len(p) == 3 and p[1] in "tTwW"]
    return [a for a, _ in symbols], [n for _, n in symbols]


def faulting_functions(work, control, round_number):
    data = os.path.join(work, "faults.perf")
    subprocess.run(["timeout", "4", "perf", "record", "-q", "-e", "page-faults", "-c", "1", "-d", "-o", data, "--",
                    shoal, "agent", "bench", "--coordinator", control, "--id", f"hot-{round_number}",
                    "--work-dir", os.path.join(work, "agents"), "--key", os.path.join(work, "keys/agent.key"),
                    "--coordinator-key", os.path.join(work, "keys/coordinator.pub"), "--log-level", "error"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = subprocess.run(["perf", "script", "-i", data, "--show-mmap-events", "-F", "addr,ip"],
                         capture_output=True, text=True).stdout
    mapping, addresses = None, []
    for line in out.splitlines():
        if "MMAP" in line and "r-xp" in line and line.rstrip().endswith("/shoal-agent"):
            m = re.search(r"\[0x([0-9a-f]+)\(0x([0-9a-f]+)\) @ 0x([0-9a-f]+)", line)
            mapping = tuple(int(g, 16) for g in m.groups())
        elif mapping:
            fields = line.split()
            if len(fields) == 2 and fields[0] == fields[1]:  # an instruction fetch: the fault is at the ip
                addresses.append(int(fields[0], 16))
    if not mapping:
        sys.exit("error: no shoal-agent mapping in the profile (did `shoal agent` exec the lean agent?)")
    start, size, offset = mapping
    segments = subprocess.run(["readelf", "-l", "-W", lean], capture_output=True, text=True).stdout
    shift = next(int(p[2], 16) - int(p[1], 16) for p in (l.split() for l in segments.splitlines())
                 if p and p[0] == "LOAD" and "E" in p[-2])
    starts, names = text_symbols()
    found = []
    for address in addresses:
        if start <= address < start + size:
            index = bisect.bisect_right(starts, address - start + offset + shift) - 1
            if index >= 0:
                found.append(names[index])
    return found


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    order = [line.strip() for line in open(order_path) if line.strip()] if os.path.exists(order_path) else []
    known = set(order)
    with tempfile.TemporaryDirectory(prefix="shoal-hot.") as work:
        keys = os.path.join(work, "keys")
        for name in ["coordinator", "agent"]:
            subprocess.run([shoal, "keys", "generate", name, "--dir", keys], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([shoal, "keys", "allow", os.path.join(keys, "agent.pub"), "--allow", os.path.join(work, "allow")],
                       check=True, stdout=subprocess.DEVNULL)
        ready = open(os.path.join(work, "ready"), "w+")
        coordinator = subprocess.Popen(
            [shoal, "coordinator", "--control", "tcp://127.0.0.1:*", "--events", "tcp://127.0.0.1:*", "--journal",
             os.path.join(work, "journal.sqlite"), "--dir", os.path.join(work, "out"), "--key",
             os.path.join(keys, "coordinator.key"), "--allow", os.path.join(work, "allow"), "--log-level", "error"],
            stdout=ready, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            control = None
            while control is None and time.monotonic() < deadline:
                ready.seek(0)
                m = re.search(r"^ready control=(\S+)", ready.read(), re.M)
                control = m.group(1) if m else time.sleep(0.05)
            if control is None:
                sys.exit("error: the coordinator did not become ready")
            for round_number in range(rounds):
                relink()
                new = [n for n in dict.fromkeys(faulting_functions(work, control, round_number)) if n not in known]
                known.update(new)
                order += new
                with open(order_path, "w") as f:
                    f.writelines(name + "\n" for name in order)
                print(f"round {round_number}: {len(new)} new functions, {len(order)} listed", flush=True)
                if not new:
                    break
        finally:
            coordinator.terminate()
            coordinator.wait()
    relink()


if __name__ == "__main__":
    main()
