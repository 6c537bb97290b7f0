// Command checker reads histories (JSON Lines, see history.go) and reports
// whether each is linearizable, as one JSON object per file on stdout.
//
//	checker [-timeout 60s] [-viz DIR] history.jsonl...
//
// Exit status: 0 every history is linearizable; 1 one is not (or the check
// timed out, which is not a pass); 2 bad input.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Report is the result for one history file.
type Report struct {
	File    string   `json:"file"`
	Result  string   `json:"result"` // Ok, Illegal or Unknown (timed out)
	Stats   Stats    `json:"stats"`
	Seconds float64  `json:"seconds"`
	Viz     string   `json:"visualization,omitempty"`
	BadKeys []string `json:"bad_keys,omitempty"`
}

// Check runs porcupine on one history.
func Check(ops []porcupine.Operation, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(RegisterModel, ops, timeout)
}

func badKeys(ops []porcupine.Operation, timeout time.Duration) []string {
	var bad []string
	for _, part := range partition(ops) {
		if porcupine.CheckOperationsTimeout(RegisterModel, part, timeout) == porcupine.Illegal {
			bad = append(bad, part[0].Input.(Input).Key)
		}
	}
	return bad
}

func main() {
	timeout := flag.Duration("timeout", 60*time.Second, "give up on a history after this long (reported as Unknown, a failure)")
	viz := flag.String("viz", "", "write an HTML visualization of each non-linearizable history into this directory")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: checker [-timeout 60s] [-viz DIR] history.jsonl...")
		os.Exit(2)
	}
	status := 0
	enc := json.NewEncoder(os.Stdout)
	for _, path := range flag.Args() {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ops, st, err := ReadHistory(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			os.Exit(2)
		}
		t0 := time.Now()
		res, info := Check(ops, *timeout)
		rep := Report{File: path, Result: string(res), Stats: st, Seconds: time.Since(t0).Seconds()}
		if res != porcupine.Ok {
			status = 1
			if res == porcupine.Illegal {
				rep.BadKeys = badKeys(ops, *timeout)
			}
			if *viz != "" && res == porcupine.Illegal {
				out := filepath.Join(*viz, strings.TrimSuffix(filepath.Base(path), ".jsonl")+".html")
				if err := porcupine.VisualizePath(RegisterModel, info, out); err == nil {
					rep.Viz = out
				}
			}
		}
		_ = enc.Encode(rep)
	}
	os.Exit(status)
}
