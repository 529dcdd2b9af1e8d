package sinkpeer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/logagent/logagent/internal/tcptest"
)

// maxThriftFrame is the largest frame the Thrift sink reads: what Flume's
// and Scribe's servers accept, with room to spare.
const maxThriftFrame = 64 << 20

// Thrift message types.
const (
	thriftCall   = 1
	thriftReply  = 2
	thriftOneway = 4
)

// ThriftResult decides the i32 result (field 0 of the result struct) of a
// call of method whose arguments struct is args, in the protocol the sink
// speaks. An error closes the connection without a reply.
type ThriftResult func(method string, args []byte) (int32, error)

// OK answers every call with 0: Scribe's OK, Flume's OK.
func OK(string, []byte) (int32, error) { return 0, nil }

// StartThrift starts a Thrift sink on 127.0.0.1: framed transport, compact
// or binary protocol. It reads each call's frame whole, and answers it,
// with the call's name and sequence id, with the i32 that result decides.
// It keeps nothing.
func StartThrift(tb testing.TB, compact bool, result ThriftResult) *tcptest.Server {
	return tcptest.Start(tb, func(c net.Conn) { serveThrift(c, compact, result) })
}

func serveThrift(c net.Conn, compact bool, result ThriftResult) {
	r := bufio.NewReaderSize(c, 64<<10)
	var frame, out []byte
	var size [4]byte
	for {
		if _, err := io.ReadFull(r, size[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(size[:])
		if n > maxThriftFrame {
			return
		}
		if cap(frame) < int(n) {
			frame = make([]byte, n)
		}
		frame = frame[:n]
		if _, err := io.ReadFull(r, frame); err != nil {
			return
		}
		method, typ, seq, args, err := parseThriftCall(frame, compact)
		if err != nil {
			return
		}
		res, err := result(method, args)
		if err != nil {
			return
		}
		if typ == thriftOneway {
			continue
		}
		out = appendThriftReply(out[:0], compact, method, seq, res)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

var errShort = errors.New("thrift: frame too short")

// parseThriftCall reads the message header of a call.
func parseThriftCall(f []byte, compact bool) (method string, typ byte, seq int32, args []byte, err error) {
	if compact {
		if len(f) < 2 || f[0] != 0x82 || f[1]&0x1f != 1 {
			return "", 0, 0, nil, errors.New("thrift: not a compact protocol message")
		}
		typ = f[1] >> 5 & 0x07
		s, n := binary.Uvarint(f[2:])
		if n <= 0 {
			return "", 0, 0, nil, errShort
		}
		seq = int32(uint32(s))
		p := 2 + n
		l, n := binary.Uvarint(f[p:])
		if n <= 0 || uint64(len(f)-p-n) < l {
			return "", 0, 0, nil, errShort
		}
		p += n
		method = string(f[p : p+int(l)])
		args = f[p+int(l):]
	} else {
		if len(f) < 4 {
			return "", 0, 0, nil, errShort
		}
		v := binary.BigEndian.Uint32(f)
		if v&0x80000000 == 0 {
			return "", 0, 0, nil, errors.New("thrift: non-strict binary message")
		}
		if v&0xffff0000 != 0x80010000 {
			return "", 0, 0, nil, fmt.Errorf("thrift: bad binary version %#x", v)
		}
		typ = byte(v)
		if len(f) < 8 {
			return "", 0, 0, nil, errShort
		}
		l := binary.BigEndian.Uint32(f[4:])
		if uint64(len(f)-8) < uint64(l)+4 {
			return "", 0, 0, nil, errShort
		}
		method = string(f[8 : 8+l])
		seq = int32(binary.BigEndian.Uint32(f[8+l:]))
		args = f[12+l:]
	}
	if typ != thriftCall && typ != thriftOneway {
		return "", 0, 0, nil, fmt.Errorf("thrift: message type %d is not a call", typ)
	}
	return method, typ, seq, args, nil
}

// appendThriftReply appends the reply to method's call seq: a result
// struct whose field 0 is the i32 res.
func appendThriftReply(out []byte, compact bool, method string, seq, res int32) []byte {
	out = append(out, 0, 0, 0, 0) // frame size
	if compact {
		out = append(out, 0x82, 1|thriftReply<<5)
		out = binary.AppendUvarint(out, uint64(uint32(seq)))
		out = binary.AppendUvarint(out, uint64(len(method)))
		out = append(out, method...)
		// Field 0 cannot be a delta from field 0: the long form, type
		// i32 (5) then the id as a zigzag varint.
		out = append(out, 5, 0)
		out = binary.AppendUvarint(out, uint64(uint32(res<<1)^uint32(res>>31)))
		out = append(out, 0) // stop
	} else {
		out = binary.BigEndian.AppendUint32(out, 0x80010000|thriftReply)
		out = binary.BigEndian.AppendUint32(out, uint32(len(method)))
		out = append(out, method...)
		out = binary.BigEndian.AppendUint32(out, uint32(seq))
		out = append(out, 8, 0, 0) // i32, field 0
		out = binary.BigEndian.AppendUint32(out, uint32(res))
		out = append(out, 0) // stop
	}
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out
}

// ThriftListLen returns the length of the list that is field id of the
// arguments struct args, skipping the fields before it (which must be of
// scalar or string types), without reading the list's elements.
func ThriftListLen(args []byte, compact bool, id int16) (int, error) {
	p := 0
	var last int16
	for {
		if p >= len(args) {
			return 0, errShort
		}
		var typ byte
		var fid int16
		if compact {
			b := args[p]
			p++
			typ = b & 0x0f
			if typ == 0 {
				return 0, fmt.Errorf("thrift: no field %d", id)
			}
			if d := int16(b >> 4); d != 0 {
				fid = last + d
			} else {
				z, n := binary.Uvarint(args[p:])
				if n <= 0 {
					return 0, errShort
				}
				p += n
				fid = int16(z>>1) ^ -int16(z&1)
			}
			last = fid
			if fid == id {
				if typ != 9 { // list
					return 0, fmt.Errorf("thrift: field %d is not a list", id)
				}
				if p >= len(args) {
					return 0, errShort
				}
				if l := int(args[p] >> 4); l != 15 {
					return l, nil
				}
				l, n := binary.Uvarint(args[p+1:])
				if n <= 0 {
					return 0, errShort
				}
				return int(l), nil
			}
			switch typ {
			case 1, 2: // bool: in the type
			case 3: // byte
				p++
			case 4, 5, 6: // varints
				_, n := binary.Uvarint(args[p:])
				if n <= 0 {
					return 0, errShort
				}
				p += n
			case 7: // double
				p += 8
			case 8: // binary
				l, n := binary.Uvarint(args[p:])
				if n <= 0 {
					return 0, errShort
				}
				p += n + int(l)
			default:
				return 0, fmt.Errorf("thrift: cannot skip field %d of compact type %d", fid, typ)
			}
			continue
		}
		typ = args[p]
		if typ == 0 {
			return 0, fmt.Errorf("thrift: no field %d", id)
		}
		if p+3 > len(args) {
			return 0, errShort
		}
		fid = int16(binary.BigEndian.Uint16(args[p+1:]))
		p += 3
		if fid == id {
			if typ != 15 { // list
				return 0, fmt.Errorf("thrift: field %d is not a list", id)
			}
			if p+5 > len(args) {
				return 0, errShort
			}
			return int(int32(binary.BigEndian.Uint32(args[p+1:]))), nil
		}
		switch typ {
		case 2, 3: // bool, byte
			p++
		case 6: // i16
			p += 2
		case 8: // i32
			p += 4
		case 4, 10: // double, i64
			p += 8
		case 11: // string
			if p+4 > len(args) {
				return 0, errShort
			}
			p += 4 + int(binary.BigEndian.Uint32(args[p:]))
		default:
			return 0, fmt.Errorf("thrift: cannot skip field %d of binary type %d", fid, typ)
		}
	}
}
