// Package main checks histories of GET/SET/INCR on integer registers for
// linearizability with porcupine (docs/replication.md, "Linearizability").
//
// The model is one register per key, partitioned by key (a history is
// linearizable iff each key's is). A register holds an integer or nothing
// (absent). SET stores its argument; INCR adds one (absent counts as 0) and
// returns the new value; GET returns the value or nothing.
//
// An operation whose outcome the client could not learn (the connection
// broke, the write timed out waiting for replicas) is recorded with
// status "unknown": its return time is set after every other operation's
// and its output is left open, so it may take effect at any moment after
// its call or, linearized last, never. A failed read has no effect and is
// left out by the recorder.
package main

import (
	"fmt"
	"sort"

	"github.com/anishathalye/porcupine"
)

// Absent is the state of a key that holds no value.
const Absent int64 = -1 << 62

// Input is what the client asked.
type Input struct {
	Op    string // "get", "set" or "incr"
	Key   string
	Value int64 // set: the value written
}

// Output is what the client saw.
type Output struct {
	Unknown bool  // the outcome is unknown: any result is possible
	Value   int64 // get: the value read (Absent: none); incr: the new value
}

func step(state, input, output interface{}) (bool, interface{}) {
	st := state.(int64)
	in := input.(Input)
	out := output.(Output)
	switch in.Op {
	case "get":
		return out.Unknown || out.Value == st, st
	case "set":
		return true, in.Value
	case "incr":
		base := st
		if base == Absent {
			base = 0
		}
		return out.Unknown || out.Value == base+1, base + 1
	}
	panic(fmt.Sprintf("unknown operation %q", in.Op))
}

func partition(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	for _, op := range history {
		k := op.Input.(Input).Key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

func describeValue(v int64) string {
	if v == Absent {
		return "nil"
	}
	return fmt.Sprint(v)
}

// RegisterModel is the sequential specification.
var RegisterModel = porcupine.Model{
	Partition: partition,
	Init:      func() interface{} { return Absent },
	Step:      step,
	Equal:     func(a, b interface{}) bool { return a.(int64) == b.(int64) },
	Hash:      func(s interface{}) uint64 { return uint64(s.(int64)) },
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(Input), output.(Output)
		res := describeValue(out.Value)
		if out.Unknown {
			res = "?"
		}
		switch in.Op {
		case "set":
			return fmt.Sprintf("set(%s, %d) -> %s", in.Key, in.Value, map[bool]string{true: "?", false: "ok"}[out.Unknown])
		default:
			return fmt.Sprintf("%s(%s) -> %s", in.Op, in.Key, res)
		}
	},
	DescribeState: func(s interface{}) string { return describeValue(s.(int64)) },
}
