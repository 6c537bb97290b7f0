package main

import (
	"encoding/hex"

	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeServer answers V-Proto requests with canned reference replies (bodies
// taken from testdata/fixtures.json, i.e. produced by the Python codec).
// corruptAfter > 0 flips a CRC byte in the reply with that sequence number.
type fakeServer struct {
	ln           net.Listener
	replies      map[uint8][]byte
	served       atomic.Int64
	corruptAfter int64
	errorReplies bool
}

func startFake(t *testing.T) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fx := loadFixtures(t, "testdata/fixtures.json")
	body := func(name string) []byte {
		for _, f := range fx {
			if f.Name == name {
				b, _ := hex.DecodeString(f.BodyHex)
				return b
			}
		}
		t.Fatalf("fixture %s missing", name)
		return nil
	}
	s := &fakeServer{ln: ln, replies: map[uint8][]byte{
		opHello: body("resp-hello"), opSet: body("resp-set-true"),
		opGet: body("resp-get-True-0-64"), opIncr: body("resp-incr-1"),
	}}
	errBody := body("resp-error")
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				fr := newFrameReader(c, 1<<16)
				for {
					op, _, _, err := fr.Next()
					if err != nil {
						return
					}
					n := s.served.Add(1)
					var out []byte
					if s.errorReplies && op != opHello {
						out = appendFrame(nil, opError, 0, errBody)
					} else {
						out = appendFrame(nil, op|responseBit, 0, s.replies[op])
					}
					if s.corruptAfter > 0 && n == s.corruptAfter {
						out[len(out)-1] ^= 0x55
					}
					if _, err := c.Write(out); err != nil {
						return
					}
				}
			}(conn)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func testConfig(t *testing.T, s *fakeServer, extra ...string) *config {
	t.Helper()
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	args := append([]string{"-p", port, "-c", "4", "-n", "1000", "-P", "8", "-d", "64", "-r", "100",
		"--insecure", "--timeout", "5s"}, extra...)
	cfg, err := parseFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRunAgainstFakeServer(t *testing.T) {
	s := startFake(t)
	cfg := testConfig(t, s)
	d, _ := newDialer(cfg)
	for _, k := range []testKind{testSet, testGet, testIncr} {
		var info map[string]any
		res, err := runTest(cfg, d, k, 0, &info)
		if err != nil {
			t.Fatal(err)
		}
		if res.Completed != 1000 || res.OK != 1000 || res.ErrorReplies+res.ProtocolErrors+res.ConnErrors != 0 {
			t.Fatalf("%s: %+v", k, res)
		}
		if info["server_version"] != "0.1.0" {
			t.Fatalf("hello info %v", info)
		}
		if k == testGet && (res.GetHits != 1000 || res.GetWrongLen != 0) {
			t.Fatalf("GET hits %d wrong %d", res.GetHits, res.GetWrongLen)
		}
		if res.LatencyMs.P50 <= 0 || res.LatencyMs.P999 < res.LatencyMs.P50 || res.OpsPerSec <= 0 {
			t.Fatalf("bad latency summary %+v", res.LatencyMs)
		}
	}
}

func TestRunCountsProtocolErrors(t *testing.T) {
	s := startFake(t)
	s.corruptAfter = 200
	cfg := testConfig(t, s)
	d, _ := newDialer(cfg)
	var info map[string]any
	res, err := runTest(cfg, d, testSet, 0, &info)
	if err != nil {
		t.Fatal(err)
	}
	if res.ProtocolErrors != 1 || !strings.Contains(res.FirstError, "CRC") {
		t.Fatalf("want one CRC protocol error, got %+v", res)
	}
	s.served.Store(0)
	if code := run(append([]string{"-t", "set", "-q"}, testArgs(s)...)); code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
}

func TestRunCountsErrorReplies(t *testing.T) {
	s := startFake(t)
	s.errorReplies = true
	cfg := testConfig(t, s)
	d, _ := newDialer(cfg)
	var info map[string]any
	res, err := runTest(cfg, d, testIncr, 0, &info)
	if err != nil {
		t.Fatal(err)
	}
	if res.ErrorReplies != 1000 || res.OK != 0 || !strings.Contains(res.FirstError, "NOT_INTEGER") {
		t.Fatalf("%+v", res)
	}
	if code := run(append([]string{"-t", "incr", "-q"}, testArgs(s)...)); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
}

func TestTimeCap(t *testing.T) {
	s := startFake(t)
	cfg := testConfig(t, s, "-n", "100000000", "--duration", "200ms")
	d, _ := newDialer(cfg)
	var info map[string]any
	start := time.Now()
	res, err := runTest(cfg, d, testGet, 0, &info)
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimeCapped || time.Since(start) > 5*time.Second || res.Completed == 0 {
		t.Fatalf("time cap not honoured: %+v", res)
	}
}

func testArgs(s *fakeServer) []string {
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	return []string{"-p", port, "-c", "2", "-n", "500", "--insecure", "--json", "/dev/null"}
}
