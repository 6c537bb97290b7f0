package main

import (
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func history(t *testing.T, lines ...string) []porcupine.Operation {
	t.Helper()
	ops, _, err := ReadHistory(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

func check(t *testing.T, lines ...string) porcupine.CheckResult {
	t.Helper()
	res, _ := Check(history(t, lines...), 10*time.Second)
	return res
}

func TestSequentialRegister(t *testing.T) {
	if r := check(t,
		`{"client":0,"op":"get","key":"a","result":null,"call":0,"return":1,"status":"ok"}`,
		`{"client":0,"op":"set","key":"a","value":5,"call":2,"return":3,"status":"ok"}`,
		`{"client":0,"op":"incr","key":"a","result":6,"call":4,"return":5,"status":"ok"}`,
		`{"client":1,"op":"get","key":"a","result":6,"call":6,"return":7,"status":"ok"}`,
		`{"client":1,"op":"incr","key":"b","result":1,"call":6,"return":7,"status":"ok"}`,
	); r != porcupine.Ok {
		t.Fatalf("got %s", r)
	}
}

func TestStaleReadIsRejected(t *testing.T) {
	if r := check(t,
		`{"client":0,"op":"set","key":"a","value":1,"call":0,"return":1,"status":"ok"}`,
		`{"client":0,"op":"set","key":"a","value":2,"call":2,"return":3,"status":"ok"}`,
		`{"client":1,"op":"get","key":"a","result":1,"call":4,"return":5,"status":"ok"}`,
	); r != porcupine.Illegal {
		t.Fatalf("a read of an overwritten value after the overwrite returned: got %s", r)
	}
}

func TestConcurrentReadMaySeeEither(t *testing.T) {
	for _, v := range []string{"1", "2"} {
		if r := check(t,
			`{"client":0,"op":"set","key":"a","value":1,"call":0,"return":1,"status":"ok"}`,
			`{"client":0,"op":"set","key":"a","value":2,"call":2,"return":6,"status":"ok"}`,
			`{"client":1,"op":"get","key":"a","result":`+v+`,"call":3,"return":5,"status":"ok"}`,
		); r != porcupine.Ok {
			t.Fatalf("read %s concurrent with the write: got %s", v, r)
		}
	}
}

func TestLostAcknowledgedWriteIsRejected(t *testing.T) {
	if r := check(t,
		`{"client":0,"op":"incr","key":"c","result":1,"call":0,"return":1,"status":"ok"}`,
		`{"client":0,"op":"incr","key":"c","result":2,"call":2,"return":3,"status":"ok"}`,
		`{"client":1,"op":"incr","key":"c","result":2,"call":4,"return":5,"status":"ok"}`,
	); r != porcupine.Illegal {
		t.Fatalf("a duplicate increment (lost write): got %s", r)
	}
}

func TestUnknownWriteMayOrMayNotHappen(t *testing.T) {
	took := []string{
		`{"client":0,"op":"set","key":"a","value":1,"call":0,"return":1,"status":"ok"}`,
		`{"client":0,"op":"set","key":"a","value":2,"call":2,"status":"unknown"}`,
	}
	for _, v := range []string{"1", "2"} {
		lines := append(append([]string{}, took...),
			`{"client":1,"op":"get","key":"a","result":`+v+`,"call":10,"return":11,"status":"ok"}`,
			`{"client":1,"op":"get","key":"a","result":2,"call":12,"return":13,"status":"ok"}`)
		if r := check(t, lines...); r != porcupine.Ok {
			t.Fatalf("unknown write, reads %s then 2: got %s", v, r)
		}
	}
	// ... but once it is seen to have happened, it cannot un-happen.
	lines := append(append([]string{}, took...),
		`{"client":1,"op":"get","key":"a","result":2,"call":10,"return":11,"status":"ok"}`,
		`{"client":1,"op":"get","key":"a","result":1,"call":12,"return":13,"status":"ok"}`)
	if r := check(t, lines...); r != porcupine.Illegal {
		t.Fatalf("an unknown write seen, then unseen: got %s", r)
	}
	// An unknown increment counts at most once.
	if r := check(t,
		`{"client":0,"op":"incr","key":"c","call":0,"status":"unknown"}`,
		`{"client":1,"op":"incr","key":"c","result":2,"call":5,"return":6,"status":"ok"}`,
		`{"client":1,"op":"get","key":"c","result":3,"call":7,"return":8,"status":"ok"}`,
	); r != porcupine.Illegal {
		t.Fatalf("an unknown increment counted twice: got %s", r)
	}
	// A write that never happened cannot be read before it was called.
	if r := check(t,
		`{"client":1,"op":"get","key":"a","result":7,"call":0,"return":1,"status":"ok"}`,
		`{"client":0,"op":"set","key":"a","value":7,"call":2,"status":"unknown"}`,
	); r != porcupine.Illegal {
		t.Fatalf("a value read before its write was called: got %s", r)
	}
}

func TestBadInput(t *testing.T) {
	for _, line := range []string{
		`{"client":0,"op":"del","key":"a","call":0,"return":1,"status":"ok"}`,
		`{"client":0,"op":"get","key":"a","call":0,"status":"unknown"}`,
		`{"client":0,"op":"set","key":"a","call":0,"return":1,"status":"ok"}`,
		`{"client":0,"op":"incr","key":"a","call":5,"return":1,"status":"ok"}`,
		`not json`,
	} {
		if _, _, err := ReadHistory(strings.NewReader(line)); err == nil {
			t.Errorf("accepted %s", line)
		}
	}
}
