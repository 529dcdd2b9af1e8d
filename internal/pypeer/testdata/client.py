"""A Scribe client built with Debian's python3-thrift, for interop tests of
logagent's Scribe relay input: it sends --count entries of --category, in
Log calls of --batch entries, each message the line testenv.Line writes plus a
newline. A call answered TRY_LATER,
or whose connection failed, is sent again on a new connection until it is
answered OK; then the sequence numbers of the call are appended to --acked,
one per line.

usage: client.py --gen DIR --host H --port N --category C --tag T
                 --count N --batch N --acked FILE
"""
import argparse
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--gen", required=True)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--category", required=True)
parser.add_argument("--tag", required=True)
parser.add_argument("--count", type=int, required=True)
parser.add_argument("--batch", type=int, default=50)
parser.add_argument("--acked", required=True)
args = parser.parse_args()
sys.path.insert(0, args.gen)

from thrift.protocol import TBinaryProtocol
from thrift.transport import TSocket, TTransport
from scribe import scribe
from scribe.ttypes import LogEntry, ResultCode

acked = open(args.acked, "a")
client = None
transport = None


def connect():
    global client, transport
    sock = TSocket.TSocket(args.host, args.port)
    sock.setTimeout(120000)
    transport = TTransport.TFramedTransport(sock)
    # strictRead/strictWrite False: the old message header, as old Scribe
    # clients write it.
    proto = TBinaryProtocol.TBinaryProtocol(transport, strictRead=False, strictWrite=False)
    client = scribe.Client(proto)
    transport.open()


def line(seq):
    # testenv.Line: tag, sequence number, a padding that depends on it.
    return "%s %d %s" % (args.tag, seq, chr(ord("a") + seq % 26) * (16 + seq % 48))


seq = 0
while seq < args.count:
    n = min(args.batch, args.count - seq)
    entries = [LogEntry(category=args.category, message=line(seq + i) + "\n") for i in range(n)]
    while True:
        try:
            if client is None:
                connect()
            if client.Log(entries) == ResultCode.OK:
                break
            time.sleep(0.05)
        except Exception:
            try:
                transport.close()
            except Exception:
                pass
            client = None
            time.sleep(0.1)
    acked.write("".join("%d\n" % (seq + i) for i in range(n)))
    acked.flush()
    seq += n
print("sent", args.count, flush=True)
