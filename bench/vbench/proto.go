package main

// V-Proto frames and the message bodies vbench needs (HELLO, GET, SET, INCR
// and their replies). Encoders call the builder in the reference codec's
// canonical order (messages.py: vectors first in declaration order, then
// fields largest first, ties in reverse declaration order, defaults omitted)
// so they are byte-identical with the Python reference; proto_test.go checks
// that against frames produced by the Python code.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

const (
	headerSize   = 14
	trailerSize  = 4
	responseBit  = 0x80
	opHello      = 0x01
	opPing       = 0x02
	opGet        = 0x10
	opSet        = 0x11
	opIncr       = 0x14
	opError      = 0xFF
	maxBodyBytes = 16 << 20
)

var magic = [4]byte{'V', 'E', 'L', 'O'}

// ErrProtocol marks a violation of the protocol by the peer (bad magic, CRC,
// unexpected opcode, malformed body). vbench exits non-zero when it sees one.
var ErrProtocol = errors.New("protocol error")

func protoErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, a...))
}

// appendFrame appends one complete frame to dst.
func appendFrame(dst []byte, opcode, flags uint8, body []byte) []byte {
	start := len(dst)
	dst = append(dst, magic[:]...)
	dst = append(dst, opcode, flags)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(body)))
	dst = append(dst, body...)
	crc := crc32.ChecksumIEEE(dst[start:])
	return binary.LittleEndian.AppendUint32(dst, crc)
}

// sealFrame recomputes the CRC trailer of a complete frame in place.
func sealFrame(frame []byte) {
	n := len(frame) - trailerSize
	binary.LittleEndian.PutUint32(frame[n:], crc32.ChecksumIEEE(frame[:n]))
}

// ---- request bodies ---------------------------------------------------------

type HelloRequest struct {
	ProtocolVersion uint16
	Token           string
	ClientName      string
	Features        uint32
}

func (m HelloRequest) Encode(b *fbBuilder) []byte {
	b.Reset()
	tok, name := 0, 0
	if m.Token != "" {
		tok = b.CreateString(m.Token)
	}
	if m.ClientName != "" {
		name = b.CreateString(m.ClientName)
	}
	b.StartObject(4)
	if m.Features != 0 {
		b.AddU32(3, m.Features)
	}
	if name != 0 {
		b.AddOffset(2, name)
	}
	if tok != 0 {
		b.AddOffset(1, tok)
	}
	if m.ProtocolVersion != 0 {
		b.AddU16(0, m.ProtocolVersion)
	}
	return b.Finish(b.EndObject())
}

// KeyRequest is the body of GET, DEL, EXISTS, TTL and PERSIST.
type KeyRequest struct{ Key []byte }

func (m KeyRequest) Encode(b *fbBuilder) []byte {
	b.Reset()
	k := 0
	if len(m.Key) > 0 {
		k = b.CreateByteVector(m.Key)
	}
	b.StartObject(1)
	if k != 0 {
		b.AddOffset(0, k)
	}
	return b.Finish(b.EndObject())
}

type SetRequest struct {
	Key, Value []byte
	Kind       uint8
	TTLms      int64
	Condition  uint8
}

func (m SetRequest) Encode(b *fbBuilder) []byte {
	b.Reset()
	k, v := 0, 0
	if len(m.Key) > 0 {
		k = b.CreateByteVector(m.Key)
	}
	if len(m.Value) > 0 {
		v = b.CreateByteVector(m.Value)
	}
	b.StartObject(5)
	if m.TTLms != 0 {
		b.AddU64(3, uint64(m.TTLms))
	}
	if v != 0 {
		b.AddOffset(1, v)
	}
	if k != 0 {
		b.AddOffset(0, k)
	}
	if m.Condition != 0 {
		b.AddU8(4, m.Condition)
	}
	if m.Kind != 0 {
		b.AddU8(2, m.Kind)
	}
	return b.Finish(b.EndObject())
}

type IncrRequest struct {
	Key   []byte
	Delta int64 // schema default 1
}

func (m IncrRequest) Encode(b *fbBuilder) []byte {
	b.Reset()
	k := 0
	if len(m.Key) > 0 {
		k = b.CreateByteVector(m.Key)
	}
	b.StartObject(2)
	if m.Delta != 1 {
		b.AddU64(1, uint64(m.Delta))
	}
	if k != 0 {
		b.AddOffset(0, k)
	}
	return b.Finish(b.EndObject())
}

// ---- response bodies --------------------------------------------------------

type HelloResponse struct {
	ProtocolVersion uint16
	ServerVersion   string
	NodeID          string
	Role            uint8
	MaxFrameBytes   uint64
	MaxKeyBytes     uint32
	MaxValueBytes   uint32
	Features        uint32
}

func decodeHelloResponse(body []byte) (m HelloResponse, err error) {
	t, err := rootTable(body)
	if err != nil {
		return m, err
	}
	var s []byte
	errs := make([]error, 0, 8)
	m.ProtocolVersion, err = t.U16(0, 0)
	errs = append(errs, err)
	s, err = t.Bytes(1)
	m.ServerVersion = string(s)
	errs = append(errs, err)
	s, err = t.Bytes(2)
	m.NodeID = string(s)
	errs = append(errs, err)
	m.Role, err = t.U8(3)
	errs = append(errs, err)
	m.MaxFrameBytes, err = t.U64(4, 0)
	errs = append(errs, err)
	m.MaxKeyBytes, err = t.U32(5, 0)
	errs = append(errs, err)
	m.MaxValueBytes, err = t.U32(6, 0)
	errs = append(errs, err)
	m.Features, err = t.U32(7, 0)
	errs = append(errs, err)
	return m, errors.Join(errs...)
}

type GetResponse struct {
	Found bool
	Kind  uint8
	Value []byte
}

func decodeGetResponse(body []byte) (m GetResponse, err error) {
	t, err := rootTable(body)
	if err != nil {
		return m, err
	}
	f, err1 := t.U8(0)
	k, err2 := t.U8(1)
	v, err3 := t.Bytes(2)
	return GetResponse{Found: f != 0, Kind: k, Value: v}, errors.Join(err1, err2, err3)
}

// decodeBool reads SetResponse.applied / BoolResponse.value (slot 0).
func decodeBool(body []byte) (bool, error) {
	t, err := rootTable(body)
	if err != nil {
		return false, err
	}
	v, err := t.U8(0)
	return v != 0, err
}

// decodeI64 reads IncrResponse.value / TtlResponse.ttl_ms (slot 0, default 0).
func decodeI64(body []byte) (int64, error) {
	t, err := rootTable(body)
	if err != nil {
		return 0, err
	}
	v, err := t.U64(0, 0)
	return int64(v), err
}

type ErrorResponse struct {
	Code         uint16
	Message      string
	Primary      string
	RetryAfterMs uint32
}

func decodeErrorResponse(body []byte) (m ErrorResponse, err error) {
	t, err := rootTable(body)
	if err != nil {
		return m, err
	}
	c, e1 := t.U16(0, 0)
	msg, e2 := t.Bytes(1)
	pri, e3 := t.Bytes(2)
	ra, e4 := t.U32(3, 0)
	return ErrorResponse{c, string(msg), string(pri), ra}, errors.Join(e1, e2, e3, e4)
}

func (e ErrorResponse) Error() string {
	return fmt.Sprintf("server error %d (%s): %s", e.Code, errorCodeName(e.Code), e.Message)
}

func errorCodeName(c uint16) string {
	names := []string{"", "PROTOCOL", "BAD_CRC", "FRAME_TOO_LARGE", "UNKNOWN_OPCODE", "NOAUTH",
		"AUTH_FAILED", "BUSY", "WRONG_TYPE", "OVERFLOW", "NOT_INTEGER", "KEY_TOO_LARGE",
		"VALUE_TOO_LARGE", "INVALID_ARGUMENT", "REDIRECT", "WRITES_REFUSED", "SHUTTING_DOWN",
		"UNSUPPORTED_VERSION", "TIMEOUT", "INTERNAL"}
	if int(c) < len(names) && c > 0 {
		return names[c]
	}
	return "UNKNOWN"
}

// ---- frame reader -----------------------------------------------------------

// frameReader reads frames from a buffered stream, validating magic, length
// and CRC. The returned body aliases the reader's buffer and is valid only
// until the next call.
type frameReader struct {
	r     *bufio.Reader
	big   []byte
	Bytes int64 // bytes consumed
}

func newFrameReader(r io.Reader, size int) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, size)}
}

func (fr *frameReader) Next() (opcode, flags uint8, body []byte, err error) {
	hdr, err := fr.r.Peek(headerSize)
	if err != nil {
		return 0, 0, nil, err
	}
	if hdr[0] != 'V' || hdr[1] != 'E' || hdr[2] != 'L' || hdr[3] != 'O' {
		return 0, 0, nil, protoErr("bad magic % x", hdr[:4])
	}
	opcode, flags = hdr[4], hdr[5]
	if flags&0xF0 != 0 {
		return 0, 0, nil, protoErr("reserved flag bits set: 0x%02x", flags)
	}
	n64 := binary.LittleEndian.Uint64(hdr[6:])
	if n64 > maxBodyBytes {
		return 0, 0, nil, protoErr("body length %d exceeds %d", n64, maxBodyBytes)
	}
	total := headerSize + int(n64) + trailerSize
	var frame []byte
	if total <= fr.r.Size() {
		frame, err = fr.r.Peek(total)
		if err != nil {
			return 0, 0, nil, unexpectedEOF(err)
		}
		defer fr.r.Discard(total) //nolint:errcheck // Peek succeeded, Discard cannot fail
	} else {
		if cap(fr.big) < total {
			fr.big = make([]byte, total)
		}
		frame = fr.big[:total]
		if _, err = io.ReadFull(fr.r, frame); err != nil {
			return 0, 0, nil, unexpectedEOF(err)
		}
	}
	fr.Bytes += int64(total)
	end := total - trailerSize
	if got, want := crc32.ChecksumIEEE(frame[:end]), binary.LittleEndian.Uint32(frame[end:]); got != want {
		return 0, 0, nil, protoErr("CRC mismatch in frame with opcode 0x%02x: computed %08x, trailer %08x", opcode, got, want)
	}
	return opcode, flags, frame[headerSize:end], nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
