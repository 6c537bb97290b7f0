package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/anishathalye/porcupine"
)

// Record is one line of a history file (JSON Lines), as the Python driver writes it:
//
//	{"client": 3, "op": "incr", "key": "k1", "value": null, "result": 7,
//	 "call": 1203400, "return": 1209800, "status": "ok"}
//
// call/return are nanoseconds on one monotonic clock; status is "ok" or
// "unknown" (then return and result are ignored). result null means absent.
type Record struct {
	Client int    `json:"client"`
	Op     string `json:"op"`
	Key    string `json:"key"`
	Value  *int64 `json:"value"`
	Result *int64 `json:"result"`
	Call   int64  `json:"call"`
	Return *int64 `json:"return"`
	Status string `json:"status"`
}

// Stats counts what a history holds.
type Stats struct {
	Ops     int            `json:"ops"`
	Unknown int            `json:"unknown"`
	ByOp    map[string]int `json:"by_op"`
	Keys    int            `json:"keys"`
}

// ReadHistory parses a JSON Lines history into porcupine operations.
func ReadHistory(r io.Reader) ([]porcupine.Operation, Stats, error) {
	var ops []porcupine.Operation
	st := Stats{ByOp: map[string]int{}}
	keys := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, st, fmt.Errorf("line %d: %w", line, err)
		}
		op, err := toOperation(rec)
		if err != nil {
			return nil, st, fmt.Errorf("line %d: %w", line, err)
		}
		ops = append(ops, op)
		st.Ops++
		st.ByOp[rec.Op]++
		if op.Output.(Output).Unknown {
			st.Unknown++
		}
		keys[rec.Key] = true
	}
	st.Keys = len(keys)
	return ops, st, sc.Err()
}

func toOperation(rec Record) (porcupine.Operation, error) {
	in := Input{Op: rec.Op, Key: rec.Key}
	switch rec.Op {
	case "get", "incr":
	case "set":
		if rec.Value == nil {
			return porcupine.Operation{}, fmt.Errorf("set without a value")
		}
		in.Value = *rec.Value
	default:
		return porcupine.Operation{}, fmt.Errorf("unknown op %q", rec.Op)
	}
	out := Output{Value: Absent}
	ret := int64(math.MaxInt64)
	switch rec.Status {
	case "unknown":
		if rec.Op == "get" {
			return porcupine.Operation{}, fmt.Errorf("a failed get has no effect: leave it out")
		}
		out.Unknown = true
	case "ok":
		if rec.Return == nil || *rec.Return < rec.Call {
			return porcupine.Operation{}, fmt.Errorf("completed operation without a valid return time")
		}
		ret = *rec.Return
		if rec.Result != nil {
			out.Value = *rec.Result
		} else if rec.Op == "incr" {
			return porcupine.Operation{}, fmt.Errorf("incr without a result")
		}
	default:
		return porcupine.Operation{}, fmt.Errorf("unknown status %q", rec.Status)
	}
	return porcupine.Operation{ClientId: rec.Client, Input: in, Call: rec.Call, Output: out, Return: ret}, nil
}
