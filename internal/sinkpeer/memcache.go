package sinkpeer

import (
	"bufio"
	"bytes"
	"net"
	"testing"

	"github.com/logagent/logagent/internal/tcptest"
)

// StartMemcache starts a memcache sink on 127.0.0.1, as Kestrel speaks it:
// it answers each `set <key> <flags> <exptime> <bytes>` and its data block
// with STORED, and keeps nothing. Answers are written when no more command
// is waiting to be read, so that pipelined sets get their answers in a few
// writes. Any other command, or a malformed set, closes the connection.
func StartMemcache(tb testing.TB) *tcptest.Server {
	return tcptest.Start(tb, serveMemcache)
}

var (
	cmdSet    = []byte("set ")
	ansStored = []byte("STORED\r\n")
	crlf      = []byte("\r\n")
	space     = []byte(" ")
)

func serveMemcache(c net.Conn) {
	r := bufio.NewReaderSize(c, 256<<10)
	w := bufio.NewWriterSize(c, 16<<10)
	for {
		if r.Buffered() == 0 && w.Buffered() > 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
		line, err := r.ReadSlice('\n')
		if err != nil || !bytes.HasPrefix(line, cmdSet) || !bytes.HasSuffix(line, crlf) {
			return
		}
		// <key> <flags> <exptime> <bytes>: the data block's length is
		// the last of the four fields.
		args := line[len(cmdSet) : len(line)-2]
		if bytes.Count(args, space) != 3 {
			return
		}
		n, ok := atoi(args[bytes.LastIndexByte(args, ' ')+1:])
		if !ok {
			return
		}
		if _, err := r.Discard(n); err != nil {
			return
		}
		end, err := r.Peek(2)
		if err != nil || !bytes.Equal(end, crlf) {
			return
		}
		r.Discard(2)
		w.Write(ansStored)
	}
}

// atoi parses a decimal length without allocating.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
