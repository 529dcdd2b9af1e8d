// Package thriftrpc makes Thrift calls over one connection with the
// apache/thrift library: framed transport, binary or compact protocol. The
// outputs write each call's arguments with the protocol API directly, so
// that message bodies go from the input's buffer to the frame without being
// copied into generated structs first.
package thriftrpc

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/apache/thrift/lib/go/thrift"
)

// conn adapts a net.Conn to thrift.TTransport without buffering of its own:
// the framed transport above it holds the whole frame, and writes it in two
// writes (size, then payload).
type conn struct{ net.Conn }

func (conn) Open() error                                { return nil }
func (conn) IsOpen() bool                               { return true }
func (conn) Flush(context.Context) error                { return nil }
func (conn) RemainingBytes() (n uint64)                 { return ^uint64(0) }
func (c conn) Write(b []byte) (int, error)              { return c.Conn.Write(b) }
func (c conn) Read(b []byte) (int, error)               { return c.Conn.Read(b) }
func (c conn) SetTConfiguration(*thrift.TConfiguration) {}

// Protocol names a Thrift protocol.
type Protocol string

const (
	Binary  Protocol = "binary"
	Compact Protocol = "compact"
)

// Client makes calls over one connection, one at a time.
type Client struct {
	// Framed is the framed transport: what is written to it becomes the
	// next frame. Writing to Framed between protocol calls is the same as
	// writing through Proto's transport.
	Framed *thrift.TFramedTransport
	Proto  thrift.TProtocol
	seq    int32
}

// New returns a client on c speaking protocol p.
func New(c net.Conn, p Protocol) *Client {
	cfg := &thrift.TConfiguration{}
	framed := thrift.NewTFramedTransportConf(conn{c}, cfg)
	var proto thrift.TProtocol
	if p == Compact {
		proto = thrift.NewTCompactProtocolConf(framed, cfg)
	} else {
		proto = thrift.NewTBinaryProtocolConf(framed, cfg)
	}
	return &Client{Framed: framed, Proto: proto}
}

// AppError is a TApplicationException returned by the server (such as an
// unknown method, or an exception in its handler). The connection is still
// usable after it.
type AppError struct{ Err thrift.TApplicationException }

func (e *AppError) Error() string { return "server exception: " + e.Err.Error() }
func (e *AppError) Unwrap() error { return e.Err }

// Call sends one call of method whose single arguments struct is written by
// writeArgs (the fields only, between the struct's begin and its stop), and
// returns the i32 result of the reply (an enum or a count: field 0 of the
// result struct). An error other than *AppError means the connection is out
// of step or broken: close it.
func (c *Client) Call(ctx context.Context, method string, writeArgs func(p thrift.TProtocol) error) (int32, error) {
	c.seq++
	p := c.Proto
	if err := p.WriteMessageBegin(ctx, method, thrift.CALL, c.seq); err != nil {
		return 0, err
	}
	if err := p.WriteStructBegin(ctx, method+"_args"); err != nil {
		return 0, err
	}
	if err := writeArgs(p); err != nil {
		return 0, err
	}
	if err := p.WriteFieldStop(ctx); err != nil {
		return 0, err
	}
	if err := p.WriteStructEnd(ctx); err != nil {
		return 0, err
	}
	if err := p.WriteMessageEnd(ctx); err != nil {
		return 0, err
	}
	if err := p.Flush(ctx); err != nil {
		return 0, err
	}
	return c.readReply(ctx, method)
}

func (c *Client) readReply(ctx context.Context, method string) (int32, error) {
	p := c.Proto
	name, typ, seq, err := p.ReadMessageBegin(ctx)
	if err != nil {
		return 0, err
	}
	if name != method || seq != c.seq {
		return 0, fmt.Errorf("reply to %s #%d for call %s #%d", name, seq, method, c.seq)
	}
	switch typ {
	case thrift.EXCEPTION:
		exc := thrift.NewTApplicationException(thrift.UNKNOWN_APPLICATION_EXCEPTION, "")
		if err := exc.Read(ctx, p); err != nil {
			return 0, err
		}
		if err := p.ReadMessageEnd(ctx); err != nil {
			return 0, err
		}
		return 0, &AppError{Err: exc}
	case thrift.REPLY:
	default:
		return 0, fmt.Errorf("unexpected message type %d in reply to %s", typ, method)
	}
	if _, err := p.ReadStructBegin(ctx); err != nil {
		return 0, err
	}
	var result int32
	found := false
	for {
		_, ft, id, err := p.ReadFieldBegin(ctx)
		if err != nil {
			return 0, err
		}
		if ft == thrift.STOP {
			break
		}
		if id == 0 && ft == thrift.I32 {
			if result, err = p.ReadI32(ctx); err != nil {
				return 0, err
			}
			found = true
		} else if err := thrift.SkipDefaultDepth(ctx, p, ft); err != nil {
			return 0, err
		}
		if err := p.ReadFieldEnd(ctx); err != nil {
			return 0, err
		}
	}
	if err := p.ReadStructEnd(ctx); err != nil {
		return 0, err
	}
	if err := p.ReadMessageEnd(ctx); err != nil {
		return 0, err
	}
	if !found {
		// A declared exception or a void reply: nothing we can use, but the
		// connection is in step.
		return 0, &AppError{Err: thrift.NewTApplicationException(thrift.MISSING_RESULT, method+" returned no result")}
	}
	return result, nil
}

// IsBroken reports whether err from Call leaves the connection unusable.
func IsBroken(err error) bool {
	var ae *AppError
	return err != nil && !errors.As(err, &ae)
}
