"""NBD servers for the NBD backend tests: nbdkit and qemu-nbd on private Unix
sockets in the test's directory, each started with a readiness timeout and
always stopped (SIGTERM, then SIGKILL; a stopped process is continued first).
"""

import os
import shutil
import signal
import socket
import subprocess
import time

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def uri_of(sock):
    return f"nbd+unix:///?socket={sock}"


def accepts(sock):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(1.0)
        s.connect(sock)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Server:
    """One NBD server process serving on a Unix socket."""

    def __init__(self, name, argv, sock, log, probe=True):
        self.name, self.argv, self.sock, self.log = name, argv, sock, log
        self.probe = probe
        self.proc = None

    @property
    def uri(self):
        return uri_of(self.sock)

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} before serving: "
                                     f"{self.argv}\n{self.log_text()[-2000:]}")
            # qemu-nbd with --shared=1 would count a probe as its one client:
            # there the socket's existence is enough (it listens right after).
            if self.probe and accepts(self.sock):
                return self
            if not self.probe and os.path.exists(self.sock):
                time.sleep(0.1)  # bound; listen() follows at once
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"{self.name} not serving on {self.sock} within {READY_TIMEOUT}s")
            time.sleep(0.02)

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.running():
            self.proc.send_signal(sig)
            if sig == signal.SIGSTOP:
                self._wait_all_stopped()

    def _wait_all_stopped(self):
        """kill() returns before the group stop is done: a thread still on a
        CPU (or a vCPU the host has not run yet) can answer one more request.
        A test that means "the server no longer answers" waits until every
        thread is in state T."""
        task_dir = f"/proc/{self.proc.pid}/task"
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            states = []
            for tid in os.listdir(task_dir):
                try:
                    with open(f"{task_dir}/{tid}/stat") as f:
                        states.append(f.read().rsplit(")", 1)[1].split()[0])
                except FileNotFoundError:
                    pass  # a thread that exited meanwhile
            if states and all(s == "T" for s in states):
                return
            time.sleep(0.005)
        raise AssertionError(f"{self.name} not stopped within {READY_TIMEOUT}s of SIGSTOP")

    def kill(self):
        """SIGKILL, as a crash would."""
        if self.running():
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)

    def stop(self):
        """SIGTERM (after SIGCONT), SIGKILL if it does not go. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.terminate()
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
            except ProcessLookupError:
                pass
        return self.proc.returncode


class Servers:
    """Factory of servers for one test; stop_all() at teardown."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.started = []

    def _paths(self, name):
        n = len(self.started)
        return os.path.join(self.workdir, f"{name}{n}.sock"), os.path.join(self.workdir, f"{name}{n}.log")

    def nbdkit(self, plugin="memory", *args, filters=(), readonly=False, sock=None, options=()):
        """nbdkit [OPTIONS] [--filter=F...] PLUGIN ARGS on a private socket."""
        if shutil.which("nbdkit") is None:
            raise AssertionError("nbdkit is not installed (scripts/setup.sh installs it)")
        path, log = self._paths("nbdkit")
        sock = sock or path
        argv = ["nbdkit", "--foreground", "--unix", sock, "--exit-with-parent"]
        if readonly:
            argv.append("--readonly")
        argv += list(options)
        argv += [f"--filter={f}" for f in filters]
        argv += [plugin] + [str(a) for a in args]
        srv = Server("nbdkit", argv, sock, log)
        self.started.append(srv)
        return srv.start()

    def qemu_nbd(self, image, fmt="qcow2", shared=1, sock=None, extra=()):
        """qemu-nbd --persistent --shared=N: shared=1 is the default, one
        client and no multi-conn; more clients advertise multi-conn."""
        if shutil.which("qemu-nbd") is None:
            raise AssertionError("qemu-nbd is not installed (scripts/setup.sh installs qemu-utils)")
        path, log = self._paths("qemu-nbd")
        sock = sock or path
        argv = ["qemu-nbd", f"--format={fmt}", f"--socket={sock}", "--persistent", f"--shared={shared}",
                "--cache=writeback"] + list(extra) + [image]
        srv = Server("qemu-nbd", argv, sock, log, probe=shared > 1)
        self.started.append(srv)
        return srv.start()

    def restart(self, srv):
        """The same server again on the same socket (a server that comes back)."""
        srv.stop()
        again = Server(srv.name, srv.argv, srv.sock, srv.log, srv.probe)
        self.started.append(again)
        return again.start()

    def stop_all(self):
        for s in reversed(self.started):
            s.stop()


def qemu_img(*args, timeout=30):
    return subprocess.run(["qemu-img"] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)


def qemu_io(image, fmt, command, timeout=30):
    return subprocess.run(["qemu-io", "-f", fmt, "-c", command, image], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)
