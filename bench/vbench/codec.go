package main

// Wire codecs used by the load loop. Each connection owns one codec; a
// request is a pre-encoded template frame with a fixed-width key number
// patched in (like redis-benchmark's __rand_int__), so the hot loop does a
// copy, 12 digit writes and a CRC.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

const keyDigits = 12

type testKind int

const (
	testSet testKind = iota
	testGet
	testIncr
)

var testNames = map[string]testKind{"set": testSet, "get": testGet, "incr": testIncr}

func (k testKind) String() string { return [...]string{"SET", "GET", "INCR"}[k] }

// keyFor is the key shape shared with redis-benchmark: "key:%012d" for SET/GET
// and "counter:%012d" for INCR.
func keyFor(t testKind, n uint64) []byte {
	prefix := "key:"
	if t == testIncr {
		prefix = "counter:"
	}
	return fmt.Appendf(nil, "%s%0*d", prefix, keyDigits, n)
}

func putDigits(dst []byte, n uint64) {
	for i := keyDigits - 1; i >= 0; i-- {
		dst[i] = byte('0' + n%10)
		n /= 10
	}
}

// respStats are per-connection counters of what came back.
type respStats struct {
	ok, errors         int64 // successful replies / server error replies
	getHits, getMisses int64
	getWrongLen        int64
	setNotApplied      int64
	firstError         string
}

type codec interface {
	// handshake runs once per connection before the clock starts.
	handshake(conn net.Conn, r io.Reader) (info map[string]any, err error)
	// appendRequest appends one request for key number n.
	appendRequest(dst []byte, n uint64) []byte
	// readResponse reads and validates one reply; a non-nil error ends the
	// connection (protocol errors wrap ErrProtocol).
	readResponse(st *respStats) error
}

type codecConfig struct {
	test       testKind
	valueSize  int
	token      string
	clientName string
	noHello    bool
	flags      uint8
}

// ---- V-Proto ----------------------------------------------------------------

type vprotoCodec struct {
	cfg    codecConfig
	tmpl   []byte // one complete frame
	keyOff int    // offset of the 12 key digits in tmpl
	op     uint8
	fr     *frameReader
}

func newVprotoCodec(cfg codecConfig) *vprotoCodec {
	c := &vprotoCodec{cfg: cfg}
	b := newBuilder(256 + cfg.valueSize)
	key := keyFor(cfg.test, 0)
	var body []byte
	switch cfg.test {
	case testSet:
		c.op = opSet
		body = SetRequest{Key: key, Value: bytes.Repeat([]byte("x"), cfg.valueSize)}.Encode(b)
	case testGet:
		c.op = opGet
		body = KeyRequest{Key: key}.Encode(b)
	case testIncr:
		c.op = opIncr
		body = IncrRequest{Key: key, Delta: 1}.Encode(b)
	}
	c.tmpl = appendFrame(nil, c.op, cfg.flags, body)
	c.keyOff = bytes.Index(c.tmpl, key) + len(key) - keyDigits
	return c
}

func (c *vprotoCodec) handshake(conn net.Conn, r io.Reader) (map[string]any, error) {
	c.fr = newFrameReader(r, 64<<10)
	if c.cfg.noHello {
		return nil, nil
	}
	body := HelloRequest{ProtocolVersion: 1, Token: c.cfg.token, ClientName: c.cfg.clientName}.Encode(newBuilder(128))
	if _, err := conn.Write(appendFrame(nil, opHello, 0, body)); err != nil {
		return nil, err
	}
	op, _, rbody, err := c.fr.Next()
	if err != nil {
		return nil, fmt.Errorf("HELLO: %w", err)
	}
	switch op {
	case opHello | responseBit:
		m, err := decodeHelloResponse(rbody)
		if err != nil {
			return nil, protoErr("HELLO response: %v", err)
		}
		return map[string]any{"protocol_version": m.ProtocolVersion, "server_version": m.ServerVersion,
			"node_id": m.NodeID, "role": m.Role, "max_frame_bytes": m.MaxFrameBytes,
			"max_key_bytes": m.MaxKeyBytes, "max_value_bytes": m.MaxValueBytes}, nil
	case opError:
		m, err := decodeErrorResponse(rbody)
		if err != nil {
			return nil, protoErr("HELLO error response: %v", err)
		}
		return nil, fmt.Errorf("HELLO refused: %w", m)
	default:
		return nil, protoErr("HELLO answered with opcode 0x%02x", op)
	}
}

func (c *vprotoCodec) appendRequest(dst []byte, n uint64) []byte {
	start := len(dst)
	dst = append(dst, c.tmpl...)
	frame := dst[start:]
	putDigits(frame[c.keyOff:], n)
	sealFrame(frame)
	return dst
}

func (c *vprotoCodec) readResponse(st *respStats) error {
	op, flags, body, err := c.fr.Next()
	if err != nil {
		return err
	}
	if flags&0x0C != 0 {
		return protoErr("compressed reply (flags 0x%02x) although vbench never offers zstd", flags)
	}
	switch op {
	case c.op | responseBit:
	case opError:
		m, err := decodeErrorResponse(body)
		if err != nil {
			return protoErr("malformed ErrorResponse: %v", err)
		}
		st.errors++
		if st.firstError == "" {
			st.firstError = m.Error()
		}
		return nil
	default:
		return protoErr("reply opcode 0x%02x to request 0x%02x", op, c.op)
	}
	switch c.cfg.test {
	case testSet:
		applied, err := decodeBool(body)
		if err != nil {
			return protoErr("SetResponse: %v", err)
		}
		if !applied {
			st.setNotApplied++
		}
	case testGet:
		m, err := decodeGetResponse(body)
		if err != nil {
			return protoErr("GetResponse: %v", err)
		}
		if m.Found {
			st.getHits++
			if len(m.Value) != c.cfg.valueSize {
				st.getWrongLen++
			}
		} else {
			st.getMisses++
		}
	case testIncr:
		if _, err := decodeI64(body); err != nil {
			return protoErr("IncrResponse: %v", err)
		}
	}
	st.ok++
	return nil
}

// ---- RESP (Redis), to drive redis-server with the very same client -----------

type respCodec struct {
	cfg    codecConfig
	tmpl   []byte
	keyOff int
	r      *bufio.Reader
}

func newRespCodec(cfg codecConfig) *respCodec {
	c := &respCodec{cfg: cfg}
	key := keyFor(cfg.test, 0)
	var args [][]byte
	switch cfg.test {
	case testSet:
		args = [][]byte{[]byte("SET"), key, bytes.Repeat([]byte("x"), cfg.valueSize)}
	case testGet:
		args = [][]byte{[]byte("GET"), key}
	case testIncr:
		args = [][]byte{[]byte("INCR"), key}
	}
	c.tmpl = fmt.Appendf(nil, "*%d\r\n", len(args))
	for i, a := range args {
		c.tmpl = fmt.Appendf(c.tmpl, "$%d\r\n", len(a))
		if i == 1 {
			c.keyOff = len(c.tmpl) + len(a) - keyDigits
		}
		c.tmpl = append(c.tmpl, a...)
		c.tmpl = append(c.tmpl, '\r', '\n')
	}
	return c
}

func (c *respCodec) handshake(conn net.Conn, r io.Reader) (map[string]any, error) {
	c.r = bufio.NewReaderSize(r, 64<<10)
	if c.cfg.token != "" {
		auth := fmt.Appendf(nil, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(c.cfg.token), c.cfg.token)
		if _, err := conn.Write(auth); err != nil {
			return nil, err
		}
		var st respStats
		if err := c.readResponse(&st); err != nil || st.errors > 0 {
			return nil, fmt.Errorf("AUTH failed: %v %s", err, st.firstError)
		}
	}
	return nil, nil
}

func (c *respCodec) appendRequest(dst []byte, n uint64) []byte {
	start := len(dst)
	dst = append(dst, c.tmpl...)
	putDigits(dst[start+c.keyOff:], n)
	return dst
}

func (c *respCodec) readResponse(st *respStats) error {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return protoErr("RESP line too long")
		}
		return unexpectedEOF(err)
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return protoErr("bad RESP line %q", line)
	}
	payload := line[1 : len(line)-2]
	switch line[0] {
	case '+':
		if c.cfg.test == testSet && string(payload) != "OK" {
			st.setNotApplied++
		}
	case '-':
		st.errors++
		if st.firstError == "" {
			st.firstError = string(payload)
		}
		return nil
	case ':':
		if _, err := strconv.ParseInt(string(payload), 10, 64); err != nil {
			return protoErr("bad RESP integer %q", payload)
		}
	case '$':
		n, err := strconv.Atoi(string(payload))
		if err != nil || n < -1 || n > maxBodyBytes {
			return protoErr("bad RESP bulk length %q", payload)
		}
		if n == -1 {
			st.getMisses++
		} else {
			if _, err := c.r.Discard(n + 2); err != nil {
				return unexpectedEOF(err)
			}
			st.getHits++
			if n != c.cfg.valueSize {
				st.getWrongLen++
			}
		}
	default:
		return protoErr("unexpected RESP reply type %q", line[0])
	}
	st.ok++
	return nil
}
