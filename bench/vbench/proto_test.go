package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

type fixture struct {
	Name     string         `json:"name"`
	Message  string         `json:"message"`
	Opcode   int            `json:"opcode"`
	Flags    int            `json:"flags"`
	Fields   map[string]any `json:"fields"`
	BodyHex  string         `json:"body_hex"`
	FrameHex string         `json:"frame_hex"`
}

func loadFixtures(t *testing.T, path string) []fixture {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var out []fixture
	if err := unmarshalNumbers(data, &out); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return out
}

// unmarshalNumbers keeps integers exact (64-bit values do not fit a float64).
func unmarshalNumbers(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	return d.Decode(v)
}

func fBytes(t *testing.T, f fixture, name string) []byte {
	t.Helper()
	if s, ok := f.Fields[name+"_hex"].(string); ok {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatalf("%s: bad hex in %s: %v", f.Name, name, err)
		}
		return b
	}
	if s, ok := f.Fields[name].(string); ok {
		return []byte(s)
	}
	return nil
}

func fStr(f fixture, name string) string {
	s, _ := f.Fields[name].(string)
	return s
}

func fInt(f fixture, name string, def int64) int64 {
	switch v := f.Fields[name].(type) {
	case json.Number:
		i, err := v.Int64()
		if err == nil {
			return i
		}
	case float64:
		return int64(v)
	case string: // 64-bit values beyond 2^53 as decimal strings (proto/vectors)
		if i, err := strconv.ParseInt(v, 10, 64); err == nil {
			return i
		}
	case bool:
		if v {
			return 1
		}
		return 0
	}
	return def
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex: %v", err)
	}
	return b
}

// encodeFixture re-encodes a request fixture with vbench's encoders.
func encodeFixture(t *testing.T, b *fbBuilder, f fixture) ([]byte, bool) {
	switch f.Message {
	case "HelloRequest":
		return HelloRequest{uint16(fInt(f, "protocol_version", 0)), fStr(f, "token"), fStr(f, "client_name"),
			uint32(fInt(f, "features", 0))}.Encode(b), true
	case "KeyRequest":
		return KeyRequest{fBytes(t, f, "key")}.Encode(b), true
	case "SetRequest":
		return SetRequest{fBytes(t, f, "key"), fBytes(t, f, "value"), uint8(fInt(f, "kind", 0)),
			fInt(f, "ttl_ms", 0), uint8(fInt(f, "condition", 0))}.Encode(b), true
	case "IncrRequest":
		return IncrRequest{fBytes(t, f, "key"), fInt(f, "delta", 1)}.Encode(b), true
	}
	return nil, false
}

// checkResponse decodes a response fixture with vbench's decoders.
func checkResponse(t *testing.T, f fixture, body []byte) bool {
	switch f.Message {
	case "GetResponse":
		m, err := decodeGetResponse(body)
		if err != nil || m.Found != (fInt(f, "found", 0) != 0) || int64(m.Kind) != fInt(f, "kind", 0) ||
			!bytes.Equal(m.Value, fBytes(t, f, "value")) {
			t.Errorf("%s: decoded %+v err %v", f.Name, m, err)
		}
	case "SetResponse", "BoolResponse":
		field := "applied"
		if f.Message == "BoolResponse" {
			field = "value"
		}
		v, err := decodeBool(body)
		if err != nil || v != (fInt(f, field, 0) != 0) {
			t.Errorf("%s: decoded %v err %v", f.Name, v, err)
		}
	case "IncrResponse":
		v, err := decodeI64(body)
		if err != nil || v != fInt(f, "value", 0) {
			t.Errorf("%s: decoded %v err %v, want %v", f.Name, v, err, fInt(f, "value", 0))
		}
	case "ErrorResponse":
		m, err := decodeErrorResponse(body)
		if err != nil || int64(m.Code) != fInt(f, "code", 0) || m.Message != fStr(f, "message") ||
			m.Primary != fStr(f, "primary") || int64(m.RetryAfterMs) != fInt(f, "retry_after_ms", 0) {
			t.Errorf("%s: decoded %+v err %v", f.Name, m, err)
		}
	case "HelloResponse":
		m, err := decodeHelloResponse(body)
		if err != nil || int64(m.ProtocolVersion) != fInt(f, "protocol_version", 0) ||
			m.ServerVersion != fStr(f, "server_version") || m.NodeID != fStr(f, "node_id") ||
			int64(m.MaxFrameBytes) != fInt(f, "max_frame_bytes", 0) || int64(m.MaxKeyBytes) != fInt(f, "max_key_bytes", 0) {
			t.Errorf("%s: decoded %+v err %v", f.Name, m, err)
		}
	default:
		return false
	}
	return true
}

func runFixtures(t *testing.T, fixtures []fixture) (requests, responses int) {
	b := newBuilder(64)
	for _, f := range fixtures {
		frame := mustHex(t, f.FrameHex)
		// Framing: decode the Python frame with vbench's reader (checks magic, length, CRC).
		fr := newFrameReader(bytes.NewReader(frame), 1<<16)
		op, flags, body, err := fr.Next()
		if err != nil {
			t.Errorf("%s: reading reference frame: %v", f.Name, err)
			continue
		}
		if int(op) != f.Opcode || int(flags) != f.Flags {
			t.Errorf("%s: opcode/flags %#x/%#x, want %#x/%#x", f.Name, op, flags, f.Opcode, f.Flags)
		}
		if f.BodyHex != "" && !bytes.Equal(body, mustHex(t, f.BodyHex)) {
			t.Errorf("%s: body differs from body_hex", f.Name)
		}
		if enc, ok := encodeFixture(t, b, f); ok {
			requests++
			got := appendFrame(nil, uint8(f.Opcode), uint8(f.Flags), enc)
			if !bytes.Equal(got, frame) {
				t.Errorf("%s: frame mismatch\n got  %x\n want %x", f.Name, got, frame)
			}
			continue
		}
		if checkResponse(t, f, body) {
			responses++
		}
	}
	return
}

// TestPythonReferenceFixtures: frames produced by proto/python (see
// testdata/gen_fixtures.py) must be byte-identical to vbench's encodings.
func TestPythonReferenceFixtures(t *testing.T) {
	fx := loadFixtures(t, filepath.Join("testdata", "fixtures.json"))
	req, resp := runFixtures(t, fx)
	if req < 100 || resp < 10 {
		t.Fatalf("too few vectors checked: %d requests, %d responses", req, resp)
	}
	t.Logf("checked %d request and %d response vectors", req, resp)
}

// sharedVectors is the layout of proto/vectors/*.json (written by
// tools/generate.py vectors): byte fields are lowercase hex under the field's
// own name, 64-bit integers beyond 2^53 are decimal strings.
type sharedVectors struct {
	Valid   []fixture `json:"valid"`
	Invalid []struct {
		Name     string `json:"name"`
		FrameHex string `json:"frame_hex"`
		Error    string `json:"error"`
	} `json:"invalid"`
}

// byteFields lists, per message vbench knows, the [ubyte] fields.
var byteFields = map[string][]string{
	"KeyRequest": {"key"}, "SetRequest": {"key", "value"}, "IncrRequest": {"key"},
	"GetResponse": {"value"},
}

// TestSharedVectors checks vbench against the project's shared vectors in
// proto/vectors/*.json (or $VPROTO_VECTORS): every valid request vbench can
// encode must be byte-identical, every response it can decode must decode to
// the listed fields, every frame must pass vbench's frame reader; invalid
// frames must be rejected by the frame reader or the body decoder.
func TestSharedVectors(t *testing.T) {
	dir := os.Getenv("VPROTO_VECTORS")
	if dir == "" {
		dir = filepath.Join("..", "..", "proto", "vectors")
	}
	// The frame vectors; values.json (value encodings, no frames) is for the SDKs.
	files, _ := filepath.Glob(filepath.Join(dir, "frames*.json"))
	if len(files) == 0 {
		t.Fatalf("no shared vectors in %s (set VPROTO_VECTORS to their folder)", dir)
	}
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var sv sharedVectors
		if err := unmarshalNumbers(data, &sv); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for i := range sv.Valid {
			f := &sv.Valid[i]
			for _, name := range byteFields[f.Message] {
				if v, ok := f.Fields[name]; ok {
					f.Fields[name+"_hex"] = v
					delete(f.Fields, name)
				}
			}
		}
		req, resp := runFixtures(t, sv.Valid)
		if req < 5 || resp < 5 {
			t.Errorf("%s: only %d requests and %d responses checked", path, req, resp)
		}
		for _, iv := range sv.Invalid {
			frame := mustHex(t, iv.FrameHex)
			op, _, body, err := newFrameReader(bytes.NewReader(frame), 1<<16).Next()
			if err == nil {
				// Framing is fine: the body or the opcode must be what is wrong.
				switch {
				case op != opGet && op != opSet && op != opIncr && op != opHello:
					err = protoErr("unknown opcode 0x%02x", op) // vbench rejects unexpected opcodes
				default:
					var tab fbTable
					if tab, err = rootTable(body); err == nil {
						_, err = tab.Bytes(0)
					}
				}
			}
			if err == nil {
				t.Errorf("%s: invalid vector %s (%s) accepted", filepath.Base(path), iv.Name, iv.Error)
			}
		}
		t.Logf("%s: %d valid (%d requests re-encoded, %d responses decoded), %d invalid",
			filepath.Base(path), len(sv.Valid), req, resp, len(sv.Invalid))
	}
}

func TestFrameReaderRejectsBadCRC(t *testing.T) {
	frame := appendFrame(nil, opGet|responseBit, 0, KeyRequest{[]byte("k")}.Encode(newBuilder(64)))
	frame[len(frame)-1] ^= 0xFF
	_, _, _, err := newFrameReader(bytes.NewReader(frame), 1<<16).Next()
	if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "CRC") {
		t.Fatalf("want CRC protocol error, got %v", err)
	}
	bad := append([]byte("VELX"), frame[4:]...)
	_, _, _, err = newFrameReader(bytes.NewReader(bad), 1<<16).Next()
	if !errors.Is(err, ErrProtocol) {
		t.Fatalf("want magic protocol error, got %v", err)
	}
}

func TestFrameReaderLargeFrame(t *testing.T) {
	val := bytes.Repeat([]byte("v"), 100000)
	body := SetRequest{Key: []byte("k"), Value: val}.Encode(newBuilder(64))
	body = append([]byte(nil), body...)
	stream := appendFrame(nil, opSet, 0, body)
	stream = appendFrame(stream, opGet, 0, KeyRequest{[]byte("k")}.Encode(newBuilder(64)))
	fr := newFrameReader(bytes.NewReader(stream), 4096)
	_, _, got, err := fr.Next()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("large frame: err %v", err)
	}
	if op, _, _, err := fr.Next(); err != nil || op != opGet {
		t.Fatalf("second frame: op %#x err %v", op, err)
	}
}

func TestMalformedBodies(t *testing.T) {
	for _, body := range [][]byte{{1, 2}, {0xff, 0, 0, 0, 0, 0, 0, 0}, {4, 0, 0, 0, 0x10, 0, 0, 0}} {
		if _, err := decodeGetResponse(body); err == nil {
			t.Errorf("body %x: no error", body)
		}
	}
	if m, err := decodeGetResponse(nil); err != nil || m.Found {
		t.Errorf("empty body: %+v %v", m, err)
	}
}
