"""A small NBD server of the tests' own, in a thread, for replies no real
server sends: its first connection answers its first READ with a malformed
reply (the `fault`), later connections serve a memory disk correctly. Fixed
newstyle handshake with NBD_OPT_GO; structured replies only when asked to
offer them (READ replies are then OFFSET_DATA chunks); one connection (no
multi-conn), so the export has one.
"""

import socket
import struct
import threading

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_MAGIC = 0x67446698
STRUCTURED_MAGIC = 0x668E33EF
OPT_GO, OPT_STRUCTURED_REPLY = 7, 8
REP_ACK, REP_INFO, REP_ERR_UNSUP = 1, 3, 0x80000001
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3
FLAG_HAS_FLAGS, FLAG_SEND_FLUSH = 0x1, 0x4
CHUNK_OFFSET_DATA, CHUNK_ERROR = 1, 0x8001
DONE = 1

# fault -> (needs structured replies, the malformed reply to a READ)
FAULTS = {
    "bad-magic": (False, lambda cookie, off, n: struct.pack(">IIQ", 0xDEADBEEF, 0, cookie)),
    "unknown-cookie": (False, lambda cookie, off, n: struct.pack(">IIQ", SIMPLE_MAGIC, 0, cookie ^ 0xFFFF)),
    "beyond-read": (True, lambda cookie, off, n: struct.pack(">IHHQIQ", STRUCTURED_MAGIC, DONE, CHUNK_OFFSET_DATA,
                                                          cookie, 8 + n, off + 512) + bytes(n)),
    # Half the read in a data chunk, then DONE: the rest of the buffer
    # would be whatever it held before.
    "gap": (True, lambda cookie, off, n: struct.pack(">IHHQIQ", STRUCTURED_MAGIC, DONE, CHUNK_OFFSET_DATA,
                                                  cookie, 8 + n // 2, off) + bytes(n // 2)),
    "oversize": (True, lambda cookie, off, n: struct.pack(">IHHQI", STRUCTURED_MAGIC, DONE, CHUNK_ERROR,
                                                       cookie, 1 << 30)),
}


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b


class FakeNbd:
    def __init__(self, sock_path, size, fault):
        self.sock_path, self.size, self.fault = sock_path, size, fault
        self.structured, self.bad_reply = FAULTS[fault]
        self.disk = bytearray(size)
        self.connections = 0
        self.faults_sent = 0
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(sock_path)
        self.listener.listen(8)
        self.listener.settimeout(0.2)
        self.stopping = False
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    @property
    def uri(self):
        return f"nbd+unix:///?socket={self.sock_path}"

    def stop(self):
        self.stopping = True
        for t in list(self.threads):
            t.join(5)
        self.listener.close()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.connections += 1
                first = self.connections == 1
            t = threading.Thread(target=self._serve, args=(conn, first), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, s, first):
        s.settimeout(0.5)
        try:
            self._handshake(s)
            self._transmit(s, first)
        except (EOFError, OSError):
            pass
        finally:
            s.close()

    def _recv(self, s, n):
        while True:
            try:
                return recv_exact(s, n)
            except socket.timeout:
                if self.stopping:
                    raise EOFError

    def _opt_reply(self, s, opt, rep, data=b""):
        s.sendall(struct.pack(">QIII", REPLY_MAGIC, opt, rep, len(data)) + data)

    def _handshake(self, s):
        s.sendall(struct.pack(">QQH", NBDMAGIC, IHAVEOPT, 0x3))  # FIXED_NEWSTYLE | NO_ZEROES
        self._recv(s, 4)
        while True:
            magic, opt, length = struct.unpack(">QII", self._recv(s, 16))
            assert magic == IHAVEOPT
            self._recv(s, length)
            if opt == OPT_GO:
                info = struct.pack(">HQH", 0, self.size, FLAG_HAS_FLAGS | FLAG_SEND_FLUSH)
                self._opt_reply(s, opt, REP_INFO, info)
                self._opt_reply(s, opt, REP_ACK)
                return
            if opt == OPT_STRUCTURED_REPLY and self.structured:
                self._opt_reply(s, opt, REP_ACK)
            else:
                self._opt_reply(s, opt, REP_ERR_UNSUP)

    def _transmit(self, s, first):
        while True:
            magic, flags, typ, cookie, off, n = struct.unpack(">IHHQQI", self._recv(s, 28))
            assert magic == REQUEST_MAGIC
            if typ == CMD_WRITE:
                data = self._recv(s, n)
                self.disk[off:off + n] = data
                s.sendall(struct.pack(">IIQ", SIMPLE_MAGIC, 0, cookie))
            elif typ == CMD_READ:
                if first and self.faults_sent == 0:
                    self.faults_sent += 1
                    s.sendall(self.bad_reply(cookie, off, n))
                    # The client must hang up; stay open to see that it does.
                    while self._recv(s, 1):
                        pass
                data = bytes(self.disk[off:off + n])
                if self.structured:
                    s.sendall(struct.pack(">IHHQIQ", STRUCTURED_MAGIC, DONE, CHUNK_OFFSET_DATA, cookie, 8 + n, off)
                              + data)
                else:
                    s.sendall(struct.pack(">IIQ", SIMPLE_MAGIC, 0, cookie) + data)
            elif typ == CMD_FLUSH:
                s.sendall(struct.pack(">IIQ", SIMPLE_MAGIC, 0, cookie))
            elif typ == CMD_DISC:
                return
            else:
                s.sendall(struct.pack(">IIQ", SIMPLE_MAGIC, 22, cookie))
